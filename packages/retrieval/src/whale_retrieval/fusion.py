"""Fitting the fusion on out-of-fold neighbours: labelled pairs, a cross-fitted calibrator, fused neighbours.

The out-of-fold queries (each fold's photos against the other folds, embedded by checkpoints that never saw
them) and their verified shortlists give labelled pairs: same individual or not. The calibrator that the
answers use is fitted on all of them; the fused OOF neighbours that the threshold is tuned on are scored by
calibrators *cross-fitted* over the folds (fold f's pairs scored by a calibrator fitted on the other folds),
so the threshold is tuned on probabilities as honest as the test photos will get.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from whale_core import InputError
from whale_retrieval.answers import AnswerRule, shortlist_references, with_derived
from whale_retrieval.calibration import SIMILARITY, PairCalibrator, fit_calibrator
from whale_retrieval.postprocess import PostProcessing, StackedNeighbours


@dataclasses.dataclass(frozen=True)
class LabelledPairs:
    """The verified (query, neighbour) pairs of a stacked OOF problem, flattened.

    Attributes:
        evidence: input name → [n_pairs] values (similarity and the inliers per region).
        same: [n_pairs] True where the neighbour shows the query's individual.
        query_row: [n_pairs] the query each pair belongs to.
    """

    evidence: dict[str, np.ndarray]
    same: np.ndarray
    query_row: np.ndarray

    def take(self, mask: np.ndarray) -> LabelledPairs:
        return LabelledPairs({k: v[mask] for k, v in self.evidence.items()}, self.same[mask], self.query_row[mask])


def labelled_pairs(
    stacked: StackedNeighbours, evidence: Mapping[str, np.ndarray], references: Mapping[str, float] | None = None
) -> LabelledPairs:
    """Flatten the shortlisted neighbours (the evidence arrays' width) into labelled pairs (`references`: the
    priors of the excess inputs, `whale_retrieval.answers.with_excess`)."""
    width = min((np.shape(v)[1] for v in evidence.values()), default=stacked.sims.shape[1])
    idx = stacked.idx[:, :width]
    evidence = with_derived({name: np.asarray(v)[:, :width] for name, v in evidence.items()}, idx >= 0, references)
    rows, cols = np.nonzero(idx >= 0)
    truth = np.asarray(stacked.truth, dtype=object)
    same = stacked.gallery_labels[idx[rows, cols]].astype(object) == truth[rows]
    flat = {SIMILARITY: stacked.sims[rows, cols].astype(np.float64)}
    flat |= {name: np.asarray(values)[rows, cols] for name, values in evidence.items()}
    return LabelledPairs(flat, np.asarray(same, dtype=bool), rows)


def fit_fusion(
    stacked: StackedNeighbours,
    evidence: Mapping[str, np.ndarray],
    query_groups: Sequence[int],
    features: Sequence[str],
    kind: str,
    k_neighbors: int,
) -> tuple[StackedNeighbours, PairCalibrator]:
    """The calibrator fitted on every OOF pair, and the OOF neighbours fused by cross-fitted calibrators.

    Args:
        stacked: OOF neighbours (similarities, best first).
        evidence: `inliers_<region>` → [n_query, shortlist] for the first neighbours (`excess_<region>` is
            derived from them, see `with_excess`).
        query_groups: each query's CV fold; pairs of a fold are scored by a calibrator fitted on the others.
        features: the calibrator's inputs (`similarity` and/or `inliers_<region>`).
        kind: "logistic" or "isotonic".
        k_neighbors: neighbours kept per query (as the answers will use).

    Returns:
        (the OOF problem with P(same) scores, re-sorted; the calibrator fitted on all pairs).

    Raises:
        InputError: a single fold (nothing to cross-fit), or pairs of one class.
    """
    groups = np.asarray(query_groups)
    if len(groups) != len(stacked.sims):
        raise InputError(f"fusion: {len(groups)} query groups for {len(stacked.sims)} queries")
    folds = np.unique(groups)
    if len(folds) < 2:
        raise InputError("fusion: the calibrator is cross-fitted over folds; the selection covers only one fold")
    width = min(np.shape(v)[1] for v in evidence.values()) if evidence else 0
    references = shortlist_references({k: np.asarray(v)[:, :width] for k, v in evidence.items()},
                                      stacked.idx[:, :width] >= 0)  # fmt: skip
    pairs = labelled_pairs(stacked, evidence, references)
    fused_sims = np.empty((len(groups), min(k_neighbors, stacked.sims.shape[1])), dtype=np.float32)
    fused_idx = np.empty(fused_sims.shape, dtype=np.int64)
    post = PostProcessing(0.5, k_neighbors)
    for fold in folds:
        in_fold = groups == fold
        calibrator = fit_calibrator(pairs.take(~in_fold[pairs.query_row]).evidence,
                                    pairs.take(~in_fold[pairs.query_row]).same, features, kind)  # fmt: skip
        calibrator = dataclasses.replace(calibrator, references=references)
        rule = AnswerRule(post, calibrator, width)
        part = {name: np.asarray(values)[in_fold] for name, values in evidence.items()}
        fused_sims[in_fold], fused_idx[in_fold] = rule.fuse(stacked.sims[in_fold], stacked.idx[in_fold], part)
    final = dataclasses.replace(fit_calibrator(pairs.evidence, pairs.same, features, kind), references=references)
    return dataclasses.replace(stacked, sims=fused_sims, idx=fused_idx), final
