"""Encounters: the groups of photos that must share a CV fold, so that out-of-fold scores are not flattered.

Burst shots of one sighting look alike far beyond what makes an individual recognisable; a photo validated
against its own burst in the training fold scores a match that a new sighting would not. Photos are one
encounter when any of these links them (the groups are the connected components of all the links):

- the same non-empty `encounter` value (across individuals too: a pod photographed together stays together);
- the same individual and the same non-empty `date` (its calendar day);
- the same individual and near-identical pictures: 64-bit difference hashes (a 9×8 grayscale thumbnail,
  each bit "is this pixel brighter than its right neighbour") that differ in at most `near_duplicate_bits`
  bits. Only photos of one individual are compared, so different animals in a similar sea never merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

HASH_SIZE = 8  # an 8×8 grid of brighter-than-the-right-neighbour bits: 64 bits


def difference_hash(path: str | Path) -> np.uint64:
    """The photo's 64-bit difference hash (JPEGs are decoded at a reduced scale: only a thumbnail is needed)."""
    with Image.open(path) as img:
        img.draft("L", (4 * HASH_SIZE, 4 * HASH_SIZE))
        thumb = img.convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(thumb, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()
    return np.packbits(bits).view(">u8")[0].astype(np.uint64)


def _link_equal(keys: pd.Series, rows: list[np.ndarray]) -> None:
    """Append (row, first row with the same key) pairs for every non-empty key."""
    present = keys[keys != ""]
    codes, _ = pd.factorize(present)
    first_position = np.unique(codes, return_index=True)[1]
    positions = present.index.to_numpy()
    rows.append(np.stack([positions, positions[first_position[codes]]], axis=1))


def _link_near_duplicates(labels: pd.Series, hashes: np.ndarray, max_bits: int, rows: list[np.ndarray]) -> None:
    """Append the pairs of photos of one individual whose hashes differ in at most `max_bits` bits."""
    for members in labels.groupby(labels, sort=False).indices.values():
        if len(members) < 2:
            continue
        member_hashes = hashes[members]
        distance = np.bitwise_count(member_hashes[:, None] ^ member_hashes[None, :])
        first, second = np.nonzero(np.triu(distance <= max_bits, k=1))
        rows.append(np.stack([members[first], members[second]], axis=1))


def encounter_groups(
    table: pd.DataFrame, photos: Sequence[Path], near_duplicate_bits: int | None, workers: int = 4
) -> np.ndarray:
    """A group number per row of `table` (individual_id, optional encounter and date): rows of one encounter
    share a number (see the module doc).

    Args:
        table: the prepared rows, index 0..n-1; `encounter` and `date` are used where present ("" = not known).
        photos: each row's photo, for the near-duplicate hashes.
        near_duplicate_bits: the largest hash distance of near-duplicates; None compares no pictures.
    """
    n = len(table)
    links: list[np.ndarray] = [np.stack([np.arange(n), np.arange(n)], axis=1)]
    table = table.reset_index(drop=True)
    if "encounter" in table.columns:
        _link_equal(table["encounter"].astype(str), links)
    if "date" in table.columns:
        day = pd.to_datetime(table["date"], format="ISO8601", errors="coerce").dt.strftime("%Y-%m-%d").fillna("")
        _link_equal((table["individual_id"] + "\x00" + day).where(day != "", ""), links)
    if near_duplicate_bits is not None and n > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            hashes = np.fromiter(pool.map(difference_hash, photos), dtype=np.uint64, count=n)
        _link_near_duplicates(table["individual_id"], hashes, near_duplicate_bits, links)
    pairs = np.concatenate(links).astype(np.int64)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]
