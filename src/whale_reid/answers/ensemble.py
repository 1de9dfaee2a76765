"""Assemble the selected ensemble's embeddings from the `train_embedder` outputs.

Layout read: `embeddings/<model>/fold<k>/{train,test}.npz` with arrays `image` (str) and `emb`
(float32, L2-normalised) — every train and test photo embedded by that fold's best checkpoint.

Out-of-fold retrieval without leaks: to score fold k, the queries are the train photos of fold k
and the gallery the photos of the other folds, all embedded by the members trained *without*
fold k — the selected checkpoints of fold k. So no embedding model has seen the queries it is
tuned on (the reference tuned on a fold most of its ensemble had trained on). Photos of a known `side` are
searched on the gallery photos of their side (or of unknown side) only: `same_side`.

The members' checkpoints `<models>/<model>/fold<k>/best.pt` are read only through `verified_checkpoint`, which
holds each to the sha256 its fold summary `fold.json` recorded: identify, predict, a pseudo-label round and the
heads `tune` blends all refuse a swapped, edited or truncated checkpoint the same way.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import InputError, file_sha256, read_json
from whale_retrieval import KnnConfig, concat_embeddings
from whale_retrieval.knn import Restriction
from whale_retrieval.postprocess import RetrievalSplit, StackedNeighbours, stack_splits

EMBEDDINGS_DIR = Path("embeddings")
#: The key of a fold summary `fold.json` that records its `best.pt`'s sha256 (`whale_reid.training.records`).
CHECKPOINT_SHA256 = "checkpoint_sha256"


def load_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, float32 embeddings) from an `.npz` written by train_embedder (no pickles)."""
    if not path.is_file():
        raise InputError(f"{path}: embeddings file not found (run the train_embedder stage)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "image" not in data or "emb" not in data:
                raise InputError(f"{path}: expected arrays 'image' and 'emb', found {sorted(data.files)}")
            ids, emb = data["image"].astype(str), data["emb"].astype(np.float32)
    except (ValueError, EOFError, zipfile.BadZipFile) as err:  # InputError is a ValueError: passed on as it is
        if isinstance(err, InputError):
            raise
        raise InputError(f"{path}: corrupt or truncated embeddings file ({err}); re-run train_embedder") from None
    if len(ids) != len(emb):
        raise InputError(f"{path}: {len(ids)} image ids but {len(emb)} embeddings")
    bad_rows = np.flatnonzero(~np.isfinite(emb).all(axis=tuple(range(1, emb.ndim))))
    if len(bad_rows):
        row = int(bad_rows[0])
        raise InputError(
            f"{path}: embedding of {ids[row]!r} (row {row}) is NaN or inf ({len(bad_rows)} bad rows) — "
            "the file is corrupt; re-run the train_embedder stage"
        )
    return ids, emb


def read_selection(path: Path) -> dict:
    """`outputs/selection.json` checked: a mapping whose `members` is a list of {model, fold, ...} records.

    Raises:
        InputError: missing, not JSON, or not the select stage's shape, naming the file and what is wrong.
    """
    selection = read_json(path, "written by the select stage")
    members = selection.get("members") if isinstance(selection, dict) else None
    if not isinstance(members, list):
        raise InputError(f"{path}: no 'members' list (not the select stage's file); re-run the select stage")
    for n, member in enumerate(members):
        fold = member.get("fold") if isinstance(member, dict) else None
        if not isinstance(member, dict) or not isinstance(member.get("model"), str) or not isinstance(fold, int):
            raise InputError(f"{path}: members[{n}] is not a {{model, fold}} record; re-run the select stage")
    return selection


def verified_checkpoint(path: Path) -> Path:
    """`path`, a fold's `best.pt`, once it is checked to be the file the fold summary beside it recorded.

    A fold summary without a digest (written before it recorded one), or no summary, lets the file pass.

    Raises:
        InputError: the file is missing, or its sha256 differs from `fold.json`'s `checkpoint_sha256` (another
            fold's weights copied over it, a changed byte, a truncated copy): one line naming both and the fix.
    """
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found (re-run train_embedder)")
    record = path.parent / "fold.json"
    summary = read_json(record) if record.is_file() else {}
    recorded = summary.get(CHECKPOINT_SHA256) if isinstance(summary, dict) else None
    if recorded and file_sha256(path) != recorded:
        raise InputError(f"{path}: not the checkpoint {record} recorded (its sha256 differs): restore it, "
                         "or re-run train_embedder")  # fmt: skip
    return path


def member_checkpoints(members: pd.DataFrame, repo: Path = Path(".")) -> list[Path]:
    """The selection's checkpoints (its `checkpoint` column, relative to `repo`), in its order, each verified.

    Raises:
        InputError: a record without its checkpoint, or one that `verified_checkpoint` refuses.
    """
    if "checkpoint" not in members.columns or members["checkpoint"].isna().any():
        raise InputError("the selection names a member without its checkpoint; re-run the select stage")
    return [verified_checkpoint(repo / str(path)) for path in members["checkpoint"]]


def member_paths(members: pd.DataFrame, split: str, root: Path = EMBEDDINGS_DIR) -> list[Path]:
    return [root / str(m) / f"fold{int(f)}" / f"{split}.npz" for m, f in zip(members["model"], members["fold"])]


def ensemble_embeddings(
    members: pd.DataFrame, split: str, images: pd.Series, root: Path = EMBEDDINGS_DIR
) -> np.ndarray:
    """The members' embeddings of `images` (in that order), each L2-normalised, concatenated, re-normalised."""
    parts = []
    for path in member_paths(members, split, root):
        ids, emb = load_embeddings(path)
        position = pd.Series(np.arange(len(ids)), index=ids)
        missing = images[~images.isin(position.index)]
        if len(missing):
            raise InputError(f"{path}: no embedding for image {missing.iloc[0]!r}")
        order = position.loc[images.to_numpy()].to_numpy()
        in_order = len(order) == len(emb) and bool((order == np.arange(len(order))).all())
        parts.append((images.to_numpy().astype(str), emb if in_order else emb[order]))  # no copy when aligned
    if not parts:
        raise InputError("the selection has no members")
    return concat_embeddings(parts)[1]


@dataclass(frozen=True)
class FoldSplit:
    """One fold's out-of-fold retrieval problem."""

    fold: int
    query: pd.DataFrame
    gallery: pd.DataFrame
    query_emb: np.ndarray
    gallery_emb: np.ndarray


def oof_splits(
    members: pd.DataFrame, train: pd.DataFrame, root: Path = EMBEDDINGS_DIR, split: str = "train"
) -> Iterator[FoldSplit]:
    """For every fold that has selected members: queries = that fold, gallery = the rest.

    Args:
        split: the embeddings file read (`train`, or `train_<region>` for a second region's embeddings).
    """
    for fold in sorted(members["fold"].unique()):
        fold_members = members[members["fold"] == fold]
        emb = ensemble_embeddings(fold_members, split, train["image"], root)
        is_query = (train["fold"] == fold).to_numpy()
        yield FoldSplit(
            fold=int(fold),
            query=train[is_query].reset_index(drop=True),
            gallery=train[~is_query].reset_index(drop=True),
            query_emb=emb[is_query],
            gallery_emb=emb[~is_query],
        )


def hide_individuals(query_ids: pd.Series, gallery_ids: pd.Series, new_share: float, seed: int) -> np.ndarray:
    """A gallery mask that hides whole individuals until `new_share` of the queries have no match left.

    Cross-validation folds of a long-tailed catalogue hold few queries of unseen animals (only
    singletons), while a real survey — and Kaggle's test set — has many. Hiding a seeded random set of
    the queries' individuals from the gallery simulates them, so the `new_individual` threshold is
    tuned for the share expected at prediction time.
    """
    in_gallery = set(gallery_ids)
    n_new = int((~query_ids.isin(in_gallery)).sum())
    target = int(np.ceil(new_share * len(query_ids)))
    counts = query_ids[query_ids.isin(in_gallery)].value_counts().sort_index()
    hidden = []
    for individual in np.random.default_rng(seed).permutation(counts.index.to_numpy()):
        if n_new >= target:
            break
        hidden.append(individual)
        n_new += int(counts[individual])
    return ~gallery_ids.isin(hidden).to_numpy()  # one pass over the gallery, not one per hidden individual


def same_side(query: pd.DataFrame, gallery: pd.DataFrame) -> list[Restriction] | None:
    """The gallery rows each query may match when photos carry a `side`: its own side, or a photo of unknown side.

    A query of unknown side ("") may match every row, so does every query a gallery photo of unknown side. None
    (no restriction at all) when either table has no `side` column or no query is barred from any row: the
    search is then the plain one, and the answers are exactly those without sides.
    """
    if "side" not in query.columns or "side" not in gallery.columns:
        return None
    query_sides = query["side"].fillna("").astype(str).to_numpy()
    gallery_sides = gallery["side"].fillna("").astype(str).to_numpy()
    restrictions: list[Restriction] = []
    for side in pd.unique(query_sides):
        allowed = (gallery_sides == side) | (gallery_sides == "")
        barred = bool(side) and not allowed.all()
        restrictions.append((np.flatnonzero(query_sides == side), allowed if barred else None))
    return restrictions if any(allowed is not None for _, allowed in restrictions) else None


def stack_oof(
    members: pd.DataFrame,
    train: pd.DataFrame,
    k: int,
    knn_config: KnnConfig | None = None,
    *,
    new_share: float = 0.0,
    seed: int = 0,
    root: Path = EMBEDDINGS_DIR,
) -> tuple[StackedNeighbours, pd.DataFrame]:
    """Every fold's OOF retrieval, stacked into one problem; also the query rows (with `fold`) in that order.

    Args:
        new_share: with `hide_individuals`, at least this share of each fold's queries are of animals
            absent from that fold's gallery (0 = only the naturally unseen ones).
        seed: seeds the choice of hidden individuals (per fold: `seed + fold`).
        root: the embeddings folder (`<model>/fold<k>/train.npz`).
    """
    splits, queries = [], []
    for split in oof_splits(members, train, root):
        keep = hide_individuals(
            split.query["individual_id"], split.gallery["individual_id"], new_share, seed + split.fold
        )
        gallery = split.gallery[keep]
        splits.append(
            RetrievalSplit(
                split.query_emb, split.query["individual_id"], split.gallery_emb[keep],
                gallery["individual_id"], gallery["species"], gallery["image"], same_side(split.query, gallery),
            )
        )  # fmt: skip
        queries.append(split.query.assign(fold=split.fold))
    return stack_splits(splits, k, knn_config), pd.concat(queries, ignore_index=True)


def stack_oof_region(
    members: pd.DataFrame, train: pd.DataFrame, region: str, *, new_share: float, seed: int, root: Path
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold, in `stack_oof`'s order: a second region's ensemble embeddings of its queries and of its kept
    gallery rows (same hidden individuals: same `new_share` and `seed`). Folds may differ in width (members)."""
    parts = []
    for split in oof_splits(members, train, root, split=f"train_{region}"):
        keep = hide_individuals(
            split.query["individual_id"], split.gallery["individual_id"], new_share, seed + split.fold
        )
        parts.append((split.query_emb, split.gallery_emb[keep]))
    return parts
