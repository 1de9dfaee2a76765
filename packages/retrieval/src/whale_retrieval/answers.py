"""The one answer path: neighbours (and, when verified, their local evidence) → five answers per query.

`AnswerRule` is what `tune` fits and saves (`outputs/postprocess.json`, copied into the gallery settings), and
what `predict`, `whale-reid identify`, the report and the review page apply:

1. the first `k_neighbors` neighbours of each query, best first;
2. with a calibrator: the first `shortlist` of them carry local evidence (inliers per region); every
   neighbour's score becomes the calibrated P(same individual) of its pair — neighbours past the shortlist
   count zero inliers — and the neighbours are re-sorted by it;
3. individuals ranked by their best neighbour (`rank_individuals`) — with `PostProcessing.blend_weight` > 0,
   blended with the ArcFace head's cosine of each class (`ClassifierScores`, the 1st place's kNN + logit blend);
4. `new_individual` inserted at the first rank scoring below the (per-species) threshold
   (`insert_new_individual`), on the same scale the threshold was tuned on — or, in target-share mode
   (`PostProcessing.new_share`), below the threshold that gives the batch that share of `new_individual`.

Photos of one encounter (several photos of one animal in one sighting) are answered together: between steps 2
and 3 their neighbour lists are pooled (`pool_neighbours`), so an individual scores the best of its scores over
the member photos (max pooling) and every member gets the same answers. Without groups nothing changes.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from whale_core import InputError
from whale_retrieval.calibration import SIMILARITY, PairCalibrator
from whale_retrieval.postprocess import PostProcessing
from whale_retrieval.ranking import ClassifierScores, RankedIndividuals, most_frequent_ids, rank_individuals
from whale_retrieval.thresholds import insert_new_individual

#: A query's inlier reference leans on the typical one as if that were this many more verified candidates.
REFERENCE_PRIOR_WEIGHT = 10


def shortlist_references(evidence: Mapping[str, np.ndarray], valid: np.ndarray) -> dict[str, float]:
    """Per `inliers_<region>`, the typical reference of a full shortlist: the median over queries of the median
    inliers of each query's verified candidates (what `with_excess` leans on when a shortlist is short)."""
    out = {}
    for name, values in evidence.items():
        if name.startswith("inliers_"):
            medians = _shortlist_medians(np.asarray(values), valid)[:, 0]
            out[name] = float(np.nanmedian(medians)) if np.isfinite(medians).any() else 0.0
    return out


def _shortlist_medians(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    masked = np.where(valid, values.astype(np.float64), np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a query without candidates: NaN, handled below
        return np.nanmedian(masked, axis=1, keepdims=True) if masked.size else np.zeros((len(masked), 1))


def with_excess(
    evidence: Mapping[str, np.ndarray], valid: np.ndarray, references: Mapping[str, float] | None = None
) -> dict[str, np.ndarray]:
    """The evidence plus, for each `inliers_<region>`, `excess_<region>`: the inliers above the query's
    reference (0 below it) — the median of its verified shortlist, leaning on the typical shortlist's median
    (`references`) as a prior worth `REFERENCE_PRIOR_WEIGHT` candidates.

    Why: photos of one species share structure (fin outline, saddle patch) that matches between *different*
    animals of that species; how many inliers a pair has beyond what the query's other candidates also get is
    the part due to the individual's own marks. The normalisation is per query, so it does not depend on how
    textured a survey's photos are. Why the prior: a shortlist of two or three photos (a search restricted by
    date or place, a small catalogue) has no meaningful median — with the true match among them it would sit
    near the match itself and take its evidence away. With 100 candidates the prior moves the reference by a
    tenth of the difference; with 2 it nearly is the reference.

    Args:
        evidence: name → [n, m] values for the first m neighbours of each query.
        valid: [n, m] True where the neighbour exists (the median is taken over these).
        references: `shortlist_references` of the calibration pairs; None = the shortlist median alone.
    """
    out = {name: np.asarray(values) for name, values in evidence.items()}
    for name, values in list(out.items()):
        if not name.startswith("inliers_"):
            continue
        median = np.nan_to_num(_shortlist_medians(values, valid))
        if references is not None and name in references:
            n = np.asarray(valid).sum(axis=1, keepdims=True)
            median = (n * median + REFERENCE_PRIOR_WEIGHT * references[name]) / (n + REFERENCE_PRIOR_WEIGHT)
        excess = np.maximum(values - median, 0)
        out["excess_" + name.removeprefix("inliers_")] = np.where(valid, excess, 0)
    return out


#: Inputs derived from another evidence array: prefix → the prefix of the array they are computed from.
DERIVED_FROM = {"excess_": "inliers_", "traced_": "outline_"}


def source_input(name: str) -> str:
    """The evidence array a calibrator input is computed from (`excess_backfin` → `inliers_backfin`)."""
    for prefix, source in DERIVED_FROM.items():
        if name.startswith(prefix):
            return source + name.removeprefix(prefix)
    return name


def with_derived(
    evidence: Mapping[str, np.ndarray], valid: np.ndarray, references: Mapping[str, float] | None = None
) -> dict[str, np.ndarray]:
    """The evidence plus every derived input: `excess_<region>` (`with_excess`, `references` its priors) and,
    for each `outline_<region>` (NaN where the outline is missing), `traced_<region>`: 1.0 where it is present."""
    out = with_excess(evidence, valid, references)
    for name, values in list(out.items()):
        if name.startswith("outline_"):
            out["traced_" + name.removeprefix("outline_")] = (valid & np.isfinite(values)).astype(np.float64)
    return out


@dataclasses.dataclass(frozen=True)
class Answers:
    """What the rule produced for a batch of queries.

    Attributes:
        ids: five distinct answers per query, best first (`new_individual` included where decided).
        ranked: the candidate individuals and their scores (similarity, or P(same) when verified).
        scores, idx: the neighbours in the order the ranking used ([n, k]; P(same) when verified).
        thresholds: [n] the threshold each query's ranked scores were compared with (species offset and
            `new_share` included; None when not known): `new_individual` comes first exactly where the best
            ranked score is below it.
    """

    ids: list[list[str]]
    ranked: RankedIndividuals
    scores: np.ndarray
    idx: np.ndarray
    thresholds: np.ndarray | None = None

    def best_rows(self, gallery_labels: Sequence[str]) -> list[list[int]]:
        """Per query and answer, the gallery row of that individual's best neighbour (-1: none, or
        `new_individual`) — the photo the answer rests on, shown beside the query on the pages."""
        labels = np.asarray([str(x) for x in gallery_labels], dtype=object)
        rows = []
        for answers, neighbours in zip(self.ids, self.idx):
            valid = neighbours[neighbours >= 0]
            first: dict[str, int] = {}
            for j, label in zip(valid.tolist(), labels[valid].tolist()):
                first.setdefault(label, j)
            rows.append([first.get(a, -1) for a in answers])
        return rows


def pool_neighbours(scores: np.ndarray, idx: np.ndarray, groups: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Each query's neighbours replaced by those of all queries of its group, best first (the encounter's pool).

    Ranking individuals by their best neighbour then gives each individual the max of its scores over the
    group's photos. Queries whose group is "" or None stay as they are (only padded to the pooled width).

    Args:
        scores, idx: [n, k] neighbours, best first (idx -1 = none).
        groups: a group label per query.
    """
    scores, idx = np.asarray(scores), np.asarray(idx)
    members: dict[str, list[int]] = {}
    for row, group in enumerate(groups):
        if group:
            members.setdefault(str(group), []).append(row)
    width = scores.shape[1] * max((len(rows) for rows in members.values()), default=1)
    pooled_scores = np.full((len(scores), width), -np.inf, dtype=scores.dtype)
    pooled_idx = np.full((len(scores), width), -1, dtype=idx.dtype)
    pooled_scores[:, : scores.shape[1]], pooled_idx[:, : scores.shape[1]] = scores, idx
    for rows in members.values():
        flat_scores, flat_idx = scores[rows].ravel(), idx[rows].ravel()
        flat_scores = np.where(flat_idx >= 0, flat_scores, -np.inf)
        order = np.argsort(-flat_scores, kind="stable")
        pooled_scores[rows, : len(order)] = flat_scores[order]
        pooled_idx[rows, : len(order)] = np.where(np.isfinite(flat_scores[order]), flat_idx[order], -1)
    return pooled_scores, pooled_idx


#: How far a saved threshold may lie beyond its scale's range: just above the top (1.01) is a legal way to say
#: "every photo is new"; far outside (7.5) is a hand edit or another file's number.
THRESHOLD_SLACK = 0.1


@dataclasses.dataclass(frozen=True)
class AnswerRule:
    """Tuned post-processing plus, optionally, the calibrated fusion of local evidence.

    Attributes:
        post: threshold, k_neighbors and species offsets (on the probability scale when calibrated).
        calibrator: maps (similarity, inliers per region) to P(same); None = rank by similarity alone.
        shortlist: neighbours per query that were verified (their evidence columns).
    """

    post: PostProcessing
    calibrator: PairCalibrator | None = None
    shortlist: int = 0

    @property
    def scale(self) -> str:
        """What the scores and the threshold are: "probability" when calibrated, else "similarity"."""
        return "probability" if self.calibrator is not None else "similarity"

    @property
    def evidence_names(self) -> tuple[str, ...]:
        """The calibrator's local-evidence inputs (`inliers_<region>`, `excess_<region>`; empty without one).

        `apply` takes the `inliers_<region>` arrays; the excess is derived from them (`with_excess`)."""
        return tuple(f for f in (self.calibrator.features if self.calibrator else ()) if f != SIMILARITY)

    def shortlist_columns(self, n_neighbours: int) -> int:
        """How many of a query's first neighbours are verified (the evidence arrays' width)."""
        return min(self.shortlist, self.post.k_neighbors, n_neighbours) if self.calibrator else 0

    def fuse(
        self, sims: np.ndarray, idx: np.ndarray, evidence: Mapping[str, np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first `k_neighbors` neighbours re-scored as P(same) and re-sorted (unchanged without a calibrator).

        Args:
            sims, idx: [n, k] neighbours, best first (idx -1 = no neighbour).
            evidence: name → [n, m] values for the first m = `shortlist_columns(k)` neighbours.

        Raises:
            InputError: missing evidence or arrays of the wrong shape.
        """
        k = min(self.post.k_neighbors, sims.shape[1])
        sims, idx = np.asarray(sims)[:, :k], np.asarray(idx)[:, :k]
        if self.calibrator is None:
            return sims, idx
        m = self.shortlist_columns(k)
        given = {}
        for name in {source_input(f) for f in self.evidence_names}:
            values = None if evidence is None else evidence.get(name)
            if values is None or np.shape(values)[0] != len(sims) or np.shape(values)[1] < m:
                raise InputError(f"answers: evidence {name!r} must be [{len(sims)}, {m}], got {np.shape(values)}")
            given[name] = np.asarray(values)[:, :m]
        inputs = {SIMILARITY: np.where(idx >= 0, sims, 0.0).astype(np.float64)}  # no neighbour (-inf): scored -inf
        for name, values in with_derived(given, idx[:, :m] >= 0, self.calibrator.references).items():
            full = np.zeros(sims.shape, dtype=np.float64)
            full[:, :m] = values
            inputs[name] = full
        flat = {name: values.ravel() for name, values in inputs.items()}
        fused = self.calibrator.predict(flat).reshape(sims.shape).astype(np.float32)
        fused[idx < 0] = -np.inf
        order = np.argsort(-fused, axis=1, kind="stable")
        return np.take_along_axis(fused, order, axis=1), np.take_along_axis(idx, order, axis=1)

    def apply(
        self,
        sims: np.ndarray,
        idx: np.ndarray,
        gallery_labels: Sequence[str],
        gallery_species: Sequence[str] | None = None,
        evidence: Mapping[str, np.ndarray] | None = None,
        groups: Sequence[str | None] | None = None,
        head: ClassifierScores | None = None,
    ) -> Answers:
        """Five distinct answers per query; padding ids are the gallery's most frequent (batch-independent).

        Args:
            head: the ArcFace head's scores of the queries (needed when `blends_head`; ignored otherwise).
            groups: an encounter label per query ("" = none): an encounter's queries are answered together
                from their pooled neighbours (`pool_neighbours`). None or all empty: each query on its own.
        """
        scores, order_idx = self.fuse(sims, idx, evidence)
        if groups is not None and any(groups):
            scores, order_idx = pool_neighbours(scores, order_idx, groups)
        return self.decide(scores, order_idx, gallery_labels, gallery_species, head=head)

    @property
    def blends_head(self) -> bool:
        """Whether the ranking blends in the ArcFace head's scores (then `apply` / `decide` need `head`)."""
        return self.post.blend_weight > 0

    def rank(
        self,
        scores: np.ndarray,
        order_idx: np.ndarray,
        gallery_labels: Sequence[str],
        head: ClassifierScores | None = None,
    ) -> RankedIndividuals:
        """Step 3: the individuals of fused (and pooled) neighbours, best first, the head blended in when tuned.

        Raises:
            InputError: the rule blends the head but no head scores were given.
        """
        if not self.blends_head:
            return rank_individuals(scores, order_idx, gallery_labels, 5)
        if head is None:
            raise InputError(
                f"answers: the rule blends the ArcFace head (w={self.post.blend_weight}) but got no head scores"
            )
        return rank_individuals(scores, order_idx, gallery_labels, 5, classifier_logits=head.logits,
                                classifier_labels=head.labels, blend_weight=self.post.blend_weight)  # fmt: skip

    def decide(
        self,
        scores: np.ndarray,
        order_idx: np.ndarray,
        gallery_labels: Sequence[str],
        gallery_species: Sequence[str] | None = None,
        pad_labels: Sequence[str] | None = None,
        head: ClassifierScores | None = None,
    ) -> Answers:
        """Steps 3–4 on neighbours already fused (`fuse`) and, for encounters, pooled: rank, insert new_individual.

        Args:
            pad_labels: the labels whose most frequent ids fill a short answer list (default: the gallery's;
                a search restricted to part of the gallery passes that part's labels).
            head: as in `apply`.
        """
        ranked = self.rank(scores, order_idx, gallery_labels, head)
        thresholds = self.post.thresholds(order_idx, gallery_species, self.post.base_threshold(ranked))
        pads = gallery_labels if pad_labels is None else pad_labels
        pad_ids = most_frequent_ids(list(map(str, pads)), 6)
        per_query = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(ranked),)).copy()
        return Answers(insert_new_individual(ranked, thresholds, 5, pad_ids=pad_ids), ranked, scores, order_idx,
                       per_query)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the post-processing keys plus `scale`, `shortlist` and `calibrator` (or null)."""
        return {
            **self.post.to_dict(),
            "scale": self.scale,
            "shortlist": self.shortlist,
            "calibrator": self.calibrator.to_dict() if self.calibrator else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "post-processing") -> AnswerRule:
        """Read `to_dict`'s keys from `postprocess.json` or the gallery settings (other keys are ignored there).

        Raises:
            InputError: a missing threshold or k, a threshold outside its scale's range ([0, 1] for P(same),
                [-1, 1] for cosine similarity, each widened by THRESHOLD_SLACK), or an unreadable calibrator,
                naming `source`.
        """
        try:
            post = PostProcessing.from_dict(
                {
                    key: data[key]
                    for key in ("threshold", "k_neighbors", "species_offsets", "new_share", "blend_weight")
                    if key in data
                },
                section=source,
            )
        except InputError as err:
            raise InputError(f"{source}: {err}") from None
        if "threshold" not in data or "k_neighbors" not in data:
            raise InputError(f"{source}: no threshold / k_neighbors saved (re-run the tune stage)")
        calibrator = PairCalibrator.from_dict(data["calibrator"]) if data.get("calibrator") else None
        low, high = (0.0, 1.0) if calibrator is not None else (-1.0, 1.0)
        if not low - THRESHOLD_SLACK <= post.threshold <= high + THRESHOLD_SLACK:
            scale = "probability" if calibrator is not None else "cosine similarity"
            raise InputError(
                f"{source}: threshold {post.threshold} is outside [{low:g}, {high:g}], the range of its scale "
                f"({scale}); re-run the tune stage"
            )
        shortlist = data.get("shortlist", 0)
        if isinstance(shortlist, bool) or not isinstance(shortlist, int) or shortlist < 0:
            raise InputError(f"{source}: shortlist {shortlist!r} must be a whole number >= 0; re-run the tune stage")
        return cls(post, calibrator, shortlist)
