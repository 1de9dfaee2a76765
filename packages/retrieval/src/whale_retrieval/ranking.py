"""From neighbours to individuals: each individual scored by its best neighbour (the reference rule).

Because neighbours arrive sorted by similarity, an individual's score is the similarity of its first
(highest) neighbour, and the individuals come out in order of first appearance. Ids never repeat.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

import numpy as np

from whale_core import InputError

#: Id and score of an empty slot (a query with fewer distinct individuals than asked for).
PAD_ID = ""
PAD_SCORE = -np.inf


@dataclasses.dataclass(frozen=True)
class RankedIndividuals:
    """Candidate individuals per query, best first.

    Attributes:
        ids: object array [n_query, m] of individual ids; `PAD_ID` ("") in empty slots.
        scores: float32 array [n_query, m], descending per row; `PAD_SCORE` (-inf) in empty slots.
    """

    ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray | Sequence[int]) -> RankedIndividuals:
        """The same ranking restricted to some query rows."""
        return RankedIndividuals(self.ids[rows], self.scores[rows])


@dataclasses.dataclass(frozen=True)
class ClassifierScores:
    """A classifier's cosine logits for a batch of queries (the ArcFace head's cos θ per class).

    Attributes:
        logits: float array [n_query, n_classes]; NaN where the classifier has no say on that class for that
            query (the class is not in the query's gallery, e.g. an OOF fold's): that individual is then scored
            by its neighbours alone.
        labels: the individual id of every column.
    """

    logits: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if np.ndim(self.logits) != 2 or np.shape(self.logits)[1] != len(self.labels):
            shape = np.shape(self.logits)
            raise InputError(f"classifier scores: logits {shape} do not match {len(self.labels)} labels")

    def take(self, rows: np.ndarray | Sequence[int]) -> ClassifierScores:
        """The same scores restricted to some query rows."""
        return ClassifierScores(np.asarray(self.logits)[rows], self.labels)

    def only(self, allowed: Sequence[str]) -> ClassifierScores:
        """The same scores with every class outside `allowed` set to NaN (no say)."""
        keep = np.isin(np.asarray(self.labels, dtype=object), np.asarray(list(map(str, allowed)), dtype=object))
        return ClassifierScores(np.where(keep[None, :], self.logits, np.nan), self.labels)


def most_frequent_ids(labels: Sequence[str], n: int = 5) -> list[str]:
    """The n most frequent labels (ties by id, ascending): a batch-independent padding list."""
    counts = Counter(str(label) for label in labels)
    return [label for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _check_neighbours(similarities: np.ndarray, indices: np.ndarray, n_gallery: int) -> None:
    if similarities.shape != indices.shape or similarities.ndim != 2:
        raise InputError(f"rank_individuals: similarities {similarities.shape} and indices {indices.shape} differ")
    if indices.size and indices.max() >= n_gallery:
        raise InputError(f"rank_individuals: neighbour index {indices.max()} is outside the {n_gallery} gallery labels")


def _rank_by_max(
    similarities: np.ndarray, indices: np.ndarray, gallery_labels: Sequence[str], m: int
) -> RankedIndividuals:
    """Vectorised first-occurrence ranking: one stable sort of each row's label codes."""
    names, codes = np.unique(np.asarray([str(x) for x in gallery_labels], dtype=object), return_inverse=True)
    n, k = indices.shape
    row_codes = np.where(indices >= 0, codes[np.clip(indices, 0, None)], len(names))  # missing hit → sentinel
    order = np.argsort(row_codes, axis=1, kind="stable")
    sorted_codes = np.take_along_axis(row_codes, order, axis=1)
    first = np.ones_like(sorted_codes, dtype=bool)
    first[:, 1:] = sorted_codes[:, 1:] != sorted_codes[:, :-1]
    first &= sorted_codes < len(names)
    positions = np.sort(np.where(first, order, k), axis=1)[:, :m]
    if positions.shape[1] < m:
        positions = np.pad(positions, ((0, 0), (0, m - positions.shape[1])), constant_values=k)
    valid = positions < k
    safe = np.where(valid, positions, 0)
    ids = np.where(valid, names[np.take_along_axis(row_codes, safe, axis=1) % max(len(names), 1)], PAD_ID)
    scores = np.where(valid, np.take_along_axis(similarities, safe, axis=1), PAD_SCORE).astype(np.float32)
    return RankedIndividuals(ids.astype(object), scores)


def _rank_blended(
    similarities: np.ndarray,
    indices: np.ndarray,
    gallery_labels: Sequence[str],
    m: int,
    logits: np.ndarray,
    logit_labels: Sequence[str],
    weight: float,
) -> RankedIndividuals:
    """Per query: score = (1 - w) · best neighbour similarity + w · classifier logit, over the union.

    An individual without a (finite) logit for the query keeps its neighbour score alone."""
    labels = [str(x) for x in gallery_labels]
    class_names = np.asarray([str(x) for x in logit_labels], dtype=object)
    class_pos = {name: j for j, name in enumerate(class_names)}
    ids = np.full((len(indices), m), PAD_ID, dtype=object)
    scores = np.full((len(indices), m), PAD_SCORE, dtype=np.float32)
    for row in range(len(indices)):
        hits = [(float(s), labels[i]) for s, i in zip(similarities[row], indices[row]) if i >= 0]
        knn_best: dict[str, float] = {}
        for sim, label in hits:
            knn_best.setdefault(label, sim)
        floor = hits[-1][0] if hits else -1.0  # an individual not among the neighbours scores at most this
        row_logits = np.asarray(logits[row], dtype=np.float64)
        said = np.isfinite(row_logits)
        top_classes = class_names[said][np.argsort(-row_logits[said], kind="stable")[:m]]
        candidates = list(knn_best) + [c for c in top_classes if c not in knn_best]

        blended = {}
        for c in candidates:
            logit = row_logits[class_pos[c]] if c in class_pos else np.nan
            # the classifier has no say on c (no class, or NaN): its neighbours alone
            blended[c] = (1 - weight) * knn_best.get(c, floor) + weight * logit if np.isfinite(logit) else knn_best[c]
        best = sorted(blended.items(), key=lambda kv: (-kv[1], kv[0]))[:m]
        ids[row, : len(best)] = [c for c, _ in best]
        scores[row, : len(best)] = [v for _, v in best]
    return RankedIndividuals(ids, scores)


def rank_individuals(
    similarities: np.ndarray,
    indices: np.ndarray,
    gallery_labels: Sequence[str],
    k_individuals: int = 5,
    *,
    classifier_logits: np.ndarray | None = None,
    classifier_labels: Sequence[str] | None = None,
    blend_weight: float = 0.0,
) -> RankedIndividuals:
    """Rank distinct individuals per query from its sorted neighbours.

    Without a classifier (or with `blend_weight` 0) an individual's score is its highest neighbour
    similarity, and ties keep neighbour order. With a classifier, candidates are the neighbours'
    individuals plus the classifier's top `k_individuals` classes, scored
    `(1 - w) * best_similarity + w * logit` — logits on the cosine scale (ArcFace cos θ, before the
    scale s); an individual absent from the neighbours takes the last neighbour's similarity (an
    upper bound of its own), one the classifier has no class for (or a NaN logit) keeps its neighbour score
    alone. Blended ties go by id.

    Args:
        similarities, indices: `knn_search` output ([n, k], rows sorted descending; -1 = no hit).
        gallery_labels: individual id of every gallery row.
        k_individuals: columns of the result.
        classifier_logits: optional [n, n_classes] cosine logits (NaN = no say); `classifier_labels` names the
            classes (see `ClassifierScores`).
        blend_weight: w in [0, 1].

    Returns:
        RankedIndividuals with `k_individuals` columns; a query with fewer distinct individuals is
        padded with id "" and score -inf.
    """
    similarities, indices = np.asarray(similarities), np.asarray(indices)
    _check_neighbours(similarities, indices, len(gallery_labels))
    if classifier_logits is None or blend_weight == 0.0:
        return _rank_by_max(similarities, indices, gallery_labels, k_individuals)
    if classifier_labels is None or np.shape(classifier_logits) != (len(indices), len(classifier_labels)):
        raise InputError(
            f"rank_individuals: classifier logits {np.shape(classifier_logits)} do not match "
            f"{len(indices)} queries × {0 if classifier_labels is None else len(classifier_labels)} labels"
        )
    if not 0.0 <= blend_weight <= 1.0:
        raise InputError(f"rank_individuals: blend_weight must be in [0, 1], got {blend_weight}")
    return _rank_blended(
        similarities,
        indices,
        gallery_labels,
        k_individuals,
        np.asarray(classifier_logits),
        classifier_labels,
        blend_weight,
    )
