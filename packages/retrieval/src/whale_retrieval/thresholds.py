"""Inserting `new_individual`, and the thresholds that decide where.

`new_individual` goes in at the first rank whose score is below the threshold (scalar, or one per
query). Helpers build per-query thresholds from species offsets, a global threshold that gives a
target share of queries `new_individual` at rank 1 (the 1st-place rule), or one that gives it to as many
labelled queries as are truly new (`threshold_for_truth_share`). `sweep_thresholds` scores a grid with a
vectorised MAP@5 that equals scoring `insert_new_individual`'s lists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from whale_core import InputError
from whale_retrieval.metrics import NEW_INDIVIDUAL
from whale_retrieval.ranking import PAD_ID, RankedIndividuals, most_frequent_ids


def _per_query(threshold: float | np.ndarray, n: int) -> np.ndarray:
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n,)) if np.ndim(threshold) == 0 else None
    if thresholds is None:
        thresholds = np.asarray(threshold, dtype=np.float64)
        if thresholds.shape != (n,):
            raise InputError(f"threshold: expected a scalar or {n} per-query values, got shape {thresholds.shape}")
    if np.isnan(thresholds).any():
        raise InputError(f"threshold: {int(np.isnan(thresholds).sum())} per-query value(s) are NaN")
    return thresholds


def insert_new_individual(
    ranked: RankedIndividuals,
    threshold: float | np.ndarray,
    top_k: int = 5,
    *,
    pad_ids: Sequence[str] | None = None,
) -> list[list[str]]:
    """Final answers: ranked ids with `new_individual` at the first rank scoring below the threshold.

    Padding rule (always `top_k` distinct answers when enough ids exist): empty slots score -inf, so
    `new_individual` is inserted at the first empty slot if not placed earlier; the remaining slots
    take `pad_ids` in order, skipping ids already listed. `pad_ids=None` uses the ids most frequent in
    `ranked.ids` over the whole batch (ties by id) — pass `most_frequent_ids(gallery_labels)` for a
    batch-independent rule.

    Args:
        ranked: `rank_individuals` output.
        threshold: one similarity threshold, or an array of one per query.
        top_k: answers per query.
        pad_ids: fillers for queries with too few candidates.
    """
    thresholds = _per_query(threshold, len(ranked))
    if pad_ids is None:
        pad_ids = most_frequent_ids([i for i in ranked.ids.ravel().tolist() if i != PAD_ID], top_k + 1)
    answers = []
    for ids, scores, limit in zip(ranked.ids.tolist(), ranked.scores.tolist(), thresholds.tolist()):
        out: list[str] = []
        for candidate, score in zip(ids, scores):
            if NEW_INDIVIDUAL not in out and score < limit:
                out.append(NEW_INDIVIDUAL)
            if candidate != PAD_ID and candidate not in out:
                out.append(candidate)
        if NEW_INDIVIDUAL not in out and len(out) < top_k:
            out.append(NEW_INDIVIDUAL)
        out = out[:top_k]
        out += [p for p in pad_ids if p not in out][: top_k - len(out)]
        answers.append(out)
    return answers


def map5_with_threshold(ranked: RankedIndividuals, truth: Sequence[str], threshold: float | np.ndarray) -> np.ndarray:
    """Per-image MAP@5 of `insert_new_individual(ranked, threshold)`, vectorised (padding ids ignored).

    The true id at candidate position r ends at r, or r + 1 when `new_individual` went in before it;
    `new_individual` itself lands at the first position whose score is below the threshold.
    """
    truth_arr = np.asarray([str(t) for t in truth], dtype=object)
    if len(truth_arr) != len(ranked):
        raise InputError(f"MAP@5: {len(ranked)} ranked queries but {len(truth_arr)} truth entries")
    thresholds = _per_query(threshold, len(ranked))
    m = ranked.ids.shape[1]
    below = ranked.scores < thresholds[:, None]
    new_pos = np.where(below.any(axis=1), below.argmax(axis=1), m)  # m: after all candidates
    hit = ranked.ids == truth_arr[:, None]
    known_pos = np.where(hit.any(axis=1), hit.argmax(axis=1), 99)
    known_pos = known_pos + (known_pos >= new_pos)
    final_pos = np.where(truth_arr == NEW_INDIVIDUAL, new_pos, known_pos)
    return np.where(final_pos < 5, 1.0 / (final_pos + 1.0), 0.0)


def sweep_thresholds(ranked: RankedIndividuals, truth: Sequence[str], thresholds: Sequence[float]) -> pd.DataFrame:
    """MAP@5 for each global threshold: columns threshold, map5, map5_known, map5_new (NaN if no such image)."""
    is_new = np.asarray([t == NEW_INDIVIDUAL for t in truth], dtype=bool)
    rows = []
    for value in thresholds:
        scores = map5_with_threshold(ranked, truth, float(value))
        rows.append(
            {
                "threshold": float(value),
                "map5": float(scores.mean()) if scores.size else 0.0,
                "map5_known": float(scores[~is_new].mean()) if (~is_new).any() else float("nan"),
                "map5_new": float(scores[is_new].mean()) if is_new.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["threshold", "map5", "map5_known", "map5_new"])


def query_species(indices: np.ndarray, gallery_species: Sequence[str], n_vote: int = 1) -> np.ndarray:
    """Species of each query: the majority among its first `n_vote` neighbours (1 = the top-1's).

    Ties go to the species met first (the nearer neighbour). Returns an object array of names.
    """
    species = np.asarray([str(s) for s in gallery_species], dtype=object)
    result = np.empty(len(indices), dtype=object)
    for row, neighbours in enumerate(np.asarray(indices)[:, : max(1, n_vote)]):
        names = species[neighbours[neighbours >= 0]].tolist()
        result[row] = Counter(names).most_common(1)[0][0] if names else ""
    return result


def species_thresholds(species: Sequence[str], base_threshold: float, offsets: Mapping[str, float]) -> np.ndarray:
    """Per-query thresholds: `base_threshold + offsets[species]` (offset 0 for species not listed)."""
    return np.asarray([base_threshold + float(offsets.get(str(s), 0.0)) for s in species], dtype=np.float64)


def threshold_for_new_share(ranked: RankedIndividuals, share: float) -> float:
    """A global threshold giving `new_individual` at rank 1 to `share` of the queries.

    The queries with the lowest top-1 scores get it: the threshold is the (round(share·n)+1)-th
    smallest top-1 score (+inf when share is 1). With tied scores the realised share can differ.
    """
    if not 0.0 <= share <= 1.0:
        raise InputError(f"new-individual share must be in [0, 1], got {share}")
    top1 = np.sort(ranked.scores[:, 0].astype(np.float64))
    n_new = int(round(share * len(top1)))
    return float(top1[n_new]) if n_new < len(top1) else float("inf")


def threshold_for_truth_share(
    ranked: RankedIndividuals, truth: Sequence[str], offsets: float | np.ndarray = 0.0
) -> float:
    """The global threshold that answers `new_individual` first for as many queries as truly are new.

    Why not the threshold of the best MAP@5: MAP@5 rewards `new_individual` first on a known animal whose
    candidates are weak (the true id only slides from rank 1 to 2, or was not in the five anyway), so its best
    threshold calls far more photos new than are (45 % for 15 % on the default demo, docs/results.md). Labelled
    queries whose truth is `new_individual` (unseen in their gallery) say how many should be; the queries with
    the lowest top-1 scores get it. The threshold lies midway between two distinct top-1 scores, so that a batch
    scored on the same scale gets the share, not a tie-breaking accident of the labelled one; where scores are
    tied (a calibrator's flat step) the share is the nearest one the ties allow (the smaller one on a tie).

    Args:
        ranked: the labelled queries' ranked individuals (`rank_individuals`).
        truth: each query's id, `new_individual` where its animal is absent from the gallery searched.
        offsets: per-query amounts added to the global threshold (species offsets): the share is counted on
            the thresholds with them added.

    Returns:
        The threshold; the lowest top-1 score for no new query (-inf when that is -inf: a query without
        candidates), +inf for all of them (clip it to the range searched).
    """
    if len(truth) != len(ranked):
        raise InputError(f"truth share: {len(ranked)} ranked queries but {len(truth)} truth entries")
    if not len(ranked):
        raise InputError("truth share: no labelled queries to count the new ones in")
    n_new = sum(str(t) == NEW_INDIVIDUAL for t in truth)
    top1 = ranked.scores[:, 0].astype(np.float64) - np.broadcast_to(offsets, (len(ranked),))
    values, counts = np.unique(top1, return_counts=True)
    below = np.concatenate([[0], np.cumsum(counts)])  # queries below the threshold before each distinct value
    pick = int(np.argmin(np.abs(below - n_new)))  # the first of equally near shares: the smaller
    if pick == 0:
        return float(values[0])
    if pick == len(values):
        return float("inf")
    low, high = values[pick - 1], values[pick]
    return float(high if not np.isfinite(low) else (low + high) / 2)


def new_share_at(ranked: RankedIndividuals, threshold: float | np.ndarray) -> float:
    """The share of queries that `insert_new_individual` answers `new_individual` first at this threshold."""
    if not len(ranked):
        return 0.0
    return float(np.mean(ranked.scores[:, 0].astype(np.float64) < _per_query(threshold, len(ranked))))
