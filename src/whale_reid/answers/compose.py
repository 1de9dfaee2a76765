"""The one composition of an answer: kNN → (region re-scoring) → shortlist evidence → fusion → pooling → the rule.

The predict stage (test photos), `whale-reid identify` (plain, restricted by survey metadata, encounters pooled)
and therefore the review pages and the MLflow model all answer through `compose_answers`, so their answers
agree by construction (wildlife-tools composes its `WildFusion` once in the same spirit):

1. **neighbours**: each restriction's queries are searched against its allowed gallery rows only
   (`knn_search_allowed`: exactly, as the whole gallery would be, not filtered after a search); a rule that
   re-ranks the whole shortlist (calibrated, or region-fused) searches it exactly, otherwise the search may
   stop once it has enough distinct individuals;
2. **region fusion** (optional): the neighbours re-scored with the second region's embeddings
   (`whale_reid.answers.region_fusion`); a gallery built with it refuses a caller that cannot re-score —
   the refusal lives here, in `check_region_fusion`;
3. **evidence**: when the rule is calibrated, the local features of each query against its shortlist
   (`shortlist_evidence`: inliers and fin outlines per region);
4. **fusion and pooling**: `AnswerRule.fuse` (P(same) from similarity and evidence), then an encounter's
   photos pool their neighbours (`pool_neighbours`);
5. **decision**: `AnswerRule.decide` per restriction, padding a short list only with allowed ids and blending
   the ArcFace heads' scores (restricted like the gallery) when the rule says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whale_core import InputError
from whale_reid.answers.head_scores import Head, head_scores
from whale_reid.answers.verification import MatchConfig, shortlist_evidence
from whale_retrieval import AnswerRule, Answers, GalleryIndex, KnnConfig, knn_search_allowed, pool_neighbours
from whale_retrieval.knn import Restriction
from whale_retrieval.ranking import RankedIndividuals

#: (similarities, neighbours) → the same re-scored and re-sorted (the region fusion of `predict`).
Rescorer = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
#: (query keys, their neighbours as gallery rows) → the evidence `AnswerRule.fuse` takes (another matcher's).
EvidenceFn = Callable[[Sequence[str], np.ndarray], Mapping[str, np.ndarray] | None]


@dataclass(frozen=True)
class AnswerContext:
    """What answering needs besides the query photos: the gallery and the rule saved with it.

    Attributes:
        match: the local-feature settings (used when the rule is calibrated).
        gallery_features: the gallery photos' local features per region (when calibrated).
        heads: the members' ArcFace heads (when the rule blends them).
        rescore: the region fusion's re-scoring of the neighbours, or None (`check_region_fusion` decides
            whether None is allowed for this gallery).
        allow_missing_gallery: a gallery photo without local features (enrolled later) counts 0 inliers
            instead of being an error.
        evidence: evidence from another matcher, in place of the local features' (None: `shortlist_evidence`).
    """

    rule: AnswerRule
    gallery: GalleryIndex
    knn: KnnConfig
    match: MatchConfig | None = None
    gallery_features: Mapping[str, Any] | None = None
    heads: Sequence[Head] = ()
    rescore: Rescorer | None = None
    allow_missing_gallery: bool = False
    evidence: EvidenceFn | None = None


@dataclass(frozen=True)
class Queries:
    """The photos to answer.

    Attributes:
        keys: each query's image id (the key of its local features).
        emb: [n, d] the ensemble's embeddings.
        features: called once, only when the rule is calibrated: the queries' local features per region.
        restrictions: (query rows, allowed gallery mask or None = all), each query in exactly one; None = all
            queries unrestricted.
        groups: each query's encounter ("" none): an encounter's queries are answered together.
    """

    keys: Sequence[str]
    emb: np.ndarray
    features: Callable[[], Mapping[str, Any]] = field(default=lambda: {})
    restrictions: Sequence[Restriction] | None = None
    groups: Sequence[str] | None = None


@dataclass(frozen=True)
class Composed:
    """The answers with what the pages show beside them.

    Attributes:
        answers: the rule's answers (`Answers.scores`/`idx`: the fused, pooled neighbours).
        sims, idx: the raw kNN similarities and neighbours, before any fusion.
        features: the queries' local features when the rule is calibrated (enroll keeps them), else None.
    """

    answers: Answers
    sims: np.ndarray
    idx: np.ndarray
    features: Mapping[str, Any] | None


def check_region_fusion(gallery: GalleryIndex, can_rescore: bool, source: str) -> None:
    """Refuse to answer against a region-fused gallery without re-scoring: its threshold was tuned on fused scores.

    Raises:
        InputError: the gallery's settings say `region_fusion` and the caller cannot re-score.
    """
    if gallery.settings.get("region_fusion") and not can_rescore:
        raise InputError(f"{source}: built with tune.region_fusion, which identify does not apply yet; "
                         "set tune.region_fusion.enabled: false and re-run `dvc repro`")  # fmt: skip


def partitions(texts: Sequence[str], masks: Sequence[np.ndarray | None]) -> list[Restriction]:
    """(query rows, allowed gallery rows or None = all) per distinct restriction text, in first-seen order.

    Args:
        texts: each query's restriction as text ("" none; equal texts mean equal masks).
        masks: each query's allowed gallery rows (None = all).
    """
    rows: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        rows.setdefault(text, []).append(i)
    return [(np.asarray(r), masks[r[0]]) for r in rows.values()]


def _empty(k: int) -> Composed:
    sims, idx = np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    ranked = RankedIndividuals(np.zeros((0, 5), object), np.zeros((0, 5), np.float32))
    return Composed(Answers([], ranked, sims, idx, np.zeros(0)), sims, idx, None)


def compose_answers(ctx: AnswerContext, queries: Queries) -> Composed:
    """Five answers per query photo, with the raw neighbours and the queries' local features (steps above)."""
    rule, gallery, n = ctx.rule, ctx.gallery, len(queries.emb)
    check_region_fusion(gallery, ctx.rescore is not None, "the gallery")
    k = min(rule.post.k_neighbors, len(gallery))
    if n == 0:
        return _empty(k)
    parts = list(queries.restrictions or [(np.arange(n), None)])
    exact = rule.calibrator is not None or ctx.rescore is not None  # the whole shortlist is re-ranked
    raw_s, raw_i = knn_search_allowed(queries.emb, gallery.embeddings, k, parts, config=ctx.knn,
                                      gallery_labels=None if exact else gallery.labels)  # fmt: skip
    sims, idx = ctx.rescore(raw_s, raw_i) if ctx.rescore is not None else (raw_s, raw_i)
    features, evidence = None, None
    if rule.calibrator is not None and ctx.evidence is not None:
        evidence = ctx.evidence(queries.keys, idx)
    elif rule.calibrator is not None:
        features = queries.features()
        evidence = shortlist_evidence(features, ctx.gallery_features or {}, list(queries.keys), gallery.image_ids,
                                      idx, rule.shortlist_columns(idx.shape[1]), ctx.match,
                                      allow_missing_gallery=ctx.allow_missing_gallery)  # fmt: skip
    head = head_scores(queries.emb, list(ctx.heads)) if rule.blends_head else None
    fused_s, fused_i = rule.fuse(sims, idx, evidence)
    if queries.groups is not None and any(queries.groups):
        fused_s, fused_i = pool_neighbours(fused_s, fused_i, queries.groups)
    return Composed(_decide(rule, gallery, fused_s, fused_i, parts, head), raw_s, raw_i, features)


def _decide(rule: AnswerRule, gallery: GalleryIndex, scores: np.ndarray, order: np.ndarray,
            parts: Sequence[Restriction], head) -> Answers:  # fmt: skip
    """Step 5 per restriction: a short list is padded with allowed ids only, the heads see allowed classes only."""
    n, labels = len(scores), gallery.labels
    ids: list[list[str]] = [[] for _ in range(n)]
    ranked_ids, ranked_scores = np.full((n, 5), "", dtype=object), np.full((n, 5), -np.inf, dtype=np.float32)
    thresholds = np.full(n, rule.post.threshold, dtype=np.float64)
    for rows, allowed in parts:
        pads = None if allowed is None else labels[allowed]
        part_head = None if head is None else head.take(rows) if allowed is None else head.take(rows).only(pads)
        decided = rule.decide(scores[rows], order[rows], labels, gallery.species, pad_labels=pads, head=part_head)
        for row, answer in zip(rows.tolist(), decided.ids):
            ids[row] = answer
        ranked_ids[rows], ranked_scores[rows] = decided.ranked.ids, decided.ranked.scores
        if decided.thresholds is not None:
            thresholds[rows] = decided.thresholds
    return Answers(ids, RankedIndividuals(ranked_ids, ranked_scores), scores, order, thresholds)
