"""identify's answers with survey metadata: searches restricted to part of the gallery, encounters pooled.

A query restricted by location, date window or side (`whale_reid.catalogue.metadata.candidate_mask`) is searched against
the allowed gallery rows only — exactly, as the whole gallery would be — rather than filtered after a search,
which would leave it with too few neighbours. Queries with the same restriction share one search. The
neighbours are then fused as usual (`AnswerRule.fuse`), an encounter's are pooled (`pool_neighbours`: each
individual scores its best over the member photos) and the answer rule decides (`AnswerRule.decide`), padding a
short list only with allowed ids. Without restrictions or encounters identify never comes here: its answers
stay the predict stage's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from whale_retrieval import AnswerRule, Answers, GalleryIndex, KnnConfig, knn_search_allowed, pool_neighbours
from whale_retrieval.ranking import ClassifierScores, RankedIndividuals

#: (query rows, their neighbours as gallery rows) → the local evidence `AnswerRule.fuse` takes, or None.
EvidenceFn = Callable[[np.ndarray, np.ndarray], Mapping[str, np.ndarray] | None]


def partitions(
    filters: Sequence[str], masks: Sequence[np.ndarray | None]
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(query rows, allowed gallery rows or None = all) per distinct restriction, in first-seen order."""
    rows: dict[str, list[int]] = {}
    for i, text in enumerate(filters):
        rows.setdefault(text, []).append(i)
    return [(np.asarray(r), masks[r[0]]) for r in rows.values()]


def restricted_answers(
    rule: AnswerRule,
    gallery: GalleryIndex,
    knn: KnnConfig,
    query_emb: np.ndarray,
    filters: Sequence[str],
    masks: Sequence[np.ndarray | None],
    groups: Sequence[str],
    evidence: EvidenceFn,
    head: ClassifierScores | None = None,
) -> tuple[Answers, np.ndarray, np.ndarray]:
    """The answers of restricted and/or grouped queries; also the raw kNN similarities and neighbours.

    Args:
        filters: each query's restriction as text ("" none; equal texts mean equal masks).
        masks: each query's allowed gallery rows (None = all).
        groups: each query's encounter ("" none).
        head: the queries' ArcFace-head scores when the rule blends them (restricted like the gallery).
    """
    n = len(query_emb)
    labels = gallery.labels
    parts = partitions(filters, masks)
    search_labels = None if rule.calibrator else labels  # fusion re-ranks the whole shortlist: search it exactly
    raw_s, raw_i = knn_search_allowed(
        query_emb, gallery.embeddings, rule.post.k_neighbors, parts, config=knn, gallery_labels=search_labels
    )
    fused_s, fused_i = rule.fuse(raw_s, raw_i, evidence(np.arange(n), raw_i))
    if any(groups):
        fused_s, fused_i = pool_neighbours(fused_s, fused_i, groups)
    ids: list[list[str]] = [[] for _ in range(n)]
    ranked_ids, ranked_scores = np.full((n, 5), "", dtype=object), np.full((n, 5), -np.inf, dtype=np.float32)
    thresholds = np.full(n, rule.post.threshold, dtype=np.float64)
    for rows, allowed in parts:
        pads = labels if allowed is None else labels[allowed]
        part_head = None if head is None else head.take(rows).only(pads)
        decided = rule.decide(fused_s[rows], fused_i[rows], labels, gallery.species, pad_labels=pads, head=part_head)
        for row, answer in zip(rows.tolist(), decided.ids):
            ids[row] = answer
        ranked_ids[rows], ranked_scores[rows] = decided.ranked.ids, decided.ranked.scores
        thresholds[rows] = decided.thresholds
    answers = Answers(ids, RankedIndividuals(ranked_ids, ranked_scores), fused_s, fused_i, thresholds)
    return answers, raw_s, raw_i
