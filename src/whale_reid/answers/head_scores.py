"""The ArcFace heads of the selected members as a classifier: the kNN + logit blend's second opinion.

Each member's checkpoint holds its head (`model["arcface.weight"]`: one row per class and sub-center) and the
individual of every class (`classes`). A photo's head score for an individual is the cosine of the member's
embedding of the photo to that class's weight row (the max over sub-centers, as `ArcMarginProduct.cosine`),
averaged over the members that have the class. The members' embeddings are read back from the ensemble
embedding (the concatenation of their unit rows, in the selection's order), so the scores need no network.

For out-of-fold tuning a fold's head scores are restricted to the individuals of that fold's OOF gallery
(`ClassifierScores.only`): the members' heads were trained on classes that `tune` hides from the gallery to
simulate unseen animals, and a head that still knew them would leak the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import InputError
from whale_reid.answers.ensemble import hide_individuals, member_checkpoints, oof_splits
from whale_retrieval import ClassifierScores


@dataclass(frozen=True)
class Head:
    """One member's ArcFace head: unit weight rows [n_classes · subcenters, d] and each class's individual."""

    weight: np.ndarray
    classes: tuple[str, ...]
    subcenters: int

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def cosines(self, emb: np.ndarray) -> np.ndarray:
        """cos θ of every row of `emb` [n, d] to every class: [n, n_classes] (max over sub-centers)."""
        unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        cos = unit.astype(np.float32) @ self.weight.T
        return cos.reshape(len(emb), len(self.classes), self.subcenters).max(axis=2)


def load_head(checkpoint: Path) -> Head:
    """The head of one checkpoint (written by `whale_embedder.train_fold`).

    Raises:
        InputError: the checkpoint has no ArcFace weight or its rows do not match its classes.
    """
    from whale_embedder import load_checkpoint

    state = load_checkpoint(checkpoint)
    weight = state.get("model", {}).get("arcface.weight")
    classes = tuple(str(c) for c in state.get("classes", ()))
    if weight is None or not classes or weight.shape[0] % len(classes):
        raise InputError(f"{checkpoint}: no ArcFace head matching its {len(classes)} classes (re-run train_embedder)")
    rows = weight.float().numpy()
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return Head(rows.astype(np.float32), classes, weight.shape[0] // len(classes))


def load_heads(members: pd.DataFrame, repo: Path = Path(".")) -> list[Head]:
    """The heads of the selection's members (`checkpoint` column, relative to `repo`), in its order, each
    checkpoint verified against its fold's record (`whale_reid.answers.ensemble.member_checkpoints`)."""
    return [load_head(path) for path in member_checkpoints(members, repo)]


def head_scores(ensemble_emb: np.ndarray, heads: Sequence[Head]) -> ClassifierScores:
    """Each photo's head score per individual: the mean cosine over the members whose head has that class.

    Args:
        ensemble_emb: [n, Σ d_member] the members' unit embeddings concatenated in the heads' order (any
            overall scale: each member's part is re-normalised).
        heads: one per member, in the selection's order.

    Raises:
        InputError: the embedding width is not the sum of the heads' widths.
    """
    widths = [head.dim for head in heads]
    if not heads or ensemble_emb.shape[1] != sum(widths):
        raise InputError(f"head scores: embeddings of width {ensemble_emb.shape[1]} for heads of widths {widths}")
    labels = sorted({c for head in heads for c in head.classes})
    column = {c: j for j, c in enumerate(labels)}
    total = np.zeros((len(ensemble_emb), len(labels)), np.float64)
    count = np.zeros(len(labels), np.int64)
    start = 0
    for head, width in zip(heads, widths):
        cols = np.array([column[c] for c in head.classes])
        total[:, cols] += head.cosines(ensemble_emb[:, start : start + width])
        count[cols] += 1
        start += width
    return ClassifierScores((total / count).astype(np.float32), tuple(labels))


def oof_head_scores(
    fold_embs: Sequence[tuple[np.ndarray, Sequence[str]]], heads_per_fold: Sequence[Sequence[Head]]
) -> ClassifierScores:
    """Stacked OOF head scores: each fold's queries scored by its own members, restricted to its gallery.

    Args:
        fold_embs: per fold, (its queries' ensemble embeddings, the individuals of its OOF gallery), in the
            order the folds' queries are stacked.
        heads_per_fold: per fold, the heads of its members.
    """
    parts = [head_scores(emb, heads).only(gallery) for (emb, gallery), heads in zip(fold_embs, heads_per_fold)]
    labels = sorted({c for part in parts for c in part.labels})
    column = {c: j for j, c in enumerate(labels)}
    logits = np.full((sum(len(p.logits) for p in parts), len(labels)), np.nan, np.float32)
    row = 0
    for part in parts:
        logits[row : row + len(part.logits), [column[c] for c in part.labels]] = part.logits
        row += len(part.logits)
    return ClassifierScores(logits, tuple(labels))


def oof_head(members: pd.DataFrame, train: pd.DataFrame, new_share: float, seed: int, root: Path) -> ClassifierScores:
    """The OOF queries' head scores, stacked as `whale_reid.answers.ensemble.stack_oof` stacks the queries.

    Fold k's queries are scored by fold k's members (trained without fold k) and only on the individuals that
    remain in fold k's gallery once `hide_individuals` (same share and seed as `stack_oof`) has hidden some.
    """
    parts, heads = [], []
    for split in oof_splits(members, train, root):
        keep = hide_individuals(split.query["individual_id"], split.gallery["individual_id"], new_share,
                                seed + split.fold)  # fmt: skip
        parts.append((split.query_emb, split.gallery["individual_id"][keep].unique().tolist()))
        heads.append(load_heads(members[members["fold"] == split.fold]))
    return oof_head_scores(parts, heads)
