"""Cross-validation folds stratified by individual, with the long tail handled on purpose, encounters kept whole.

Each individual's photos are shuffled (seeded) and dealt round-robin over the folds, starting at the
fold that currently holds the fewest photos. So an individual with ≥ K photos appears in every fold,
one with n < K photos in n different folds, and a singleton in exactly one fold — when that fold is
validated, the singleton is absent from training and counts as `new_individual`, which is the same
situation as an unseen animal at test time. This is what `StratifiedKFold` does for frequent ids,
without its warning and arbitrary handling of classes smaller than K.

With encounter groups (`whale_reid.dataset.encounters`) the unit dealt is the encounter, not the photo: all photos
of an encounter go to the fold its first-dealt photo gets, so no encounter sits in two folds. When every
photo is its own encounter the folds are exactly those of the photo-by-photo deal. (`StratifiedGroupKFold`
does the same job but warns for, and places arbitrarily, the individuals with fewer photos than folds —
most of a photo-ID catalogue.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from whale_core import Config


@dataclass(frozen=True)
class PrepareConfig(Config):
    """params.yaml `prepare`.

    Attributes:
        n_folds: CV folds.
        seed: the seed of the deal.
        near_duplicate_bits: photos of one individual whose difference hashes differ in at most this many of
            64 bits are one encounter (`whale_reid.dataset.encounters`); None = pictures are not compared.
    """

    SECTION = "prepare"
    RANGES = {"n_folds": "[2, 100]", "near_duplicate_bits": "[0, 64]"}
    n_folds: int = 5
    seed: int = 42
    near_duplicate_bits: int | None = 6


def assign_folds(labels: Sequence[str], n_folds: int, seed: int, groups: Sequence[int] | None = None) -> np.ndarray:
    """Fold index (0..n_folds-1) for each row, stratified by label as described in the module doc.

    Args:
        labels: the individual of each row.
        groups: the encounter of each row (`encounter_groups`); rows of one group always share a fold.
            None: every row is its own group.

    Deterministic for (labels, n_folds, seed, groups); independent of row order only up to the shuffle.
    """
    labels = np.asarray(labels, dtype=str)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    fold_sizes = np.zeros(n_folds, dtype=np.int64)
    unique, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    group_rows = pd.Series(np.arange(len(labels))).groupby(groups).indices
    # Big individuals first so the small ones fill the gaps; a seeded tie-break among equal counts.
    order = np.lexsort((rng.permutation(len(unique)), -counts))
    for label_index in order:
        rows = rng.permutation(np.flatnonzero(inverse == label_index))
        rows = rows[folds[rows] < 0]  # rows an encounter shared with an earlier individual already placed
        _, first = np.unique(groups[rows], return_index=True)
        units = groups[rows][np.sort(first)]  # this individual's encounters, in shuffled order
        start = int(np.argmin(fold_sizes))
        for step, unit in enumerate(units):
            members = group_rows[unit]  # all unplaced: a group is placed whole
            folds[members] = (start + step) % n_folds
            fold_sizes[(start + step) % n_folds] += len(members)
    return folds
