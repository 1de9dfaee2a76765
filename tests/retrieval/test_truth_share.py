"""The `new_individual` threshold chosen by how many labelled queries truly are new (`threshold_for_truth_share`).

The problem the tests build is the one the default demo showed: known animals whose photos match weakly (few
inliers) beside unseen animals, P(same) calibrated by cross-fitted isotonic maps as `tune` does. The threshold of
the best MAP@5 then calls far more queries new than are; the truth-share threshold gives the labelled share and
carries it to a second batch drawn alike and answered by the calibrator fitted on every labelled pair.
"""

from __future__ import annotations

import numpy as np
import pytest

from whale_core import InputError
from whale_retrieval import (
    NEW_INDIVIDUAL,
    AnswerRule,
    PostProcessing,
    map5_with_threshold,
    new_share_at,
    rank_individuals,
    sweep_thresholds,
    threshold_for_truth_share,
)
from whale_retrieval.fusion import fit_fusion
from whale_retrieval.postprocess import StackedNeighbours
from whale_retrieval.ranking import RankedIndividuals

FEATURES = ("similarity", "inliers_fullbody")
N_INDIVIDUALS, PHOTOS_EACH, SHORTLIST = 80, 3, 12


def verified_problem(n_query: int, new_share: float, seed: int) -> tuple[StackedNeighbours, dict[str, np.ndarray]]:
    """Queries against a gallery of 80 animals × 3 photos, each with a 12-photo shortlist and its inliers.

    A known query's animal is in its shortlist (one photo, anywhere) 85 % of the time; its photo's inliers are
    Poisson with a mean drawn per query from 1 to 25, so many true matches are weak. An unseen query
    (`new_share` of them) has no photo in the gallery. Every other candidate gets Poisson(3) inliers; the
    similarity is uniform noise plus 0.15 for the true photo.
    """
    rng = np.random.default_rng(seed)
    gallery_labels = np.asarray([f"w{i // PHOTOS_EACH}" for i in range(N_INDIVIDUALS * PHOTOS_EACH)])
    truth, sims, idx, inliers = [], [], [], []
    for _ in range(n_query):
        who = int(rng.integers(0, N_INDIVIDUALS))
        others = np.flatnonzero(gallery_labels != f"w{who}")
        row = rng.choice(others, SHORTLIST, replace=False)
        unseen = rng.random() < new_share
        truth.append(NEW_INDIVIDUAL if unseen else f"w{who}")
        if not unseen and rng.random() < 0.85:
            row[rng.integers(0, SHORTLIST)] = PHOTOS_EACH * who + int(rng.integers(0, PHOTOS_EACH))
        is_true = gallery_labels[row] == f"w{who}"
        row_sims = rng.uniform(0.3, 0.7, SHORTLIST) + 0.15 * is_true
        order = np.argsort(-row_sims)
        sims.append(row_sims[order])
        idx.append(row[order])
        inliers.append(np.where(is_true, rng.poisson(rng.uniform(1, 25), SHORTLIST), rng.poisson(3, SHORTLIST))[order])
    stacked = StackedNeighbours(np.asarray(sims, np.float32), np.asarray(idx), gallery_labels, None, truth)
    return stacked, {"inliers_fullbody": np.asarray(inliers)}


def _ranked(stacked: StackedNeighbours) -> RankedIndividuals:
    return rank_individuals(stacked.sims, stacked.idx, stacked.gallery_labels, 5)


def _true_share(truth: list[str]) -> float:
    return float(np.mean([t == NEW_INDIVIDUAL for t in truth]))


def test_the_truth_share_threshold_gives_the_labelled_share_and_carries_it_to_a_new_batch():
    labelled, evidence = verified_problem(600, 0.15, seed=0)
    folds = np.arange(len(labelled.truth)) % 3
    fused, calibrator = fit_fusion(labelled, evidence, folds, FEATURES, "isotonic", SHORTLIST)
    ranked = _ranked(fused)
    truth_share = _true_share(labelled.truth)

    grid = sweep_thresholds(ranked, labelled.truth, np.round(np.arange(0, 1.0001, 0.02), 2))
    best_map5 = float(grid.loc[grid.map5.idxmax(), "threshold"])
    assert new_share_at(ranked, best_map5) > truth_share + 0.1  # the MAP@5 optimum over-calls new_individual

    threshold = threshold_for_truth_share(ranked, labelled.truth)
    assert abs(new_share_at(ranked, threshold) - truth_share) <= 0.01  # exact but for ties on an isotonic step

    batch, batch_evidence = verified_problem(600, 0.15, seed=1)  # answered as predict does: the full calibrator
    answers = AnswerRule(PostProcessing(threshold, SHORTLIST), calibrator, SHORTLIST).apply(
        batch.sims, batch.idx, batch.gallery_labels, evidence=batch_evidence
    )
    first_new = np.mean([a[0] == NEW_INDIVIDUAL for a in answers.ids])
    assert abs(first_new - _true_share(batch.truth)) <= 0.05
    # what MAP@5 gains from over-calling is small beside the share it misstates
    at_best = map5_with_threshold(answers.ranked, batch.truth, best_map5).mean()
    assert map5_with_threshold(answers.ranked, batch.truth, threshold).mean() >= at_best - 0.05


def test_species_offsets_count_in_the_share():
    labelled, _ = verified_problem(200, 0.2, seed=2)
    ranked = _ranked(labelled)
    offsets = np.where(np.arange(200) % 2 == 0, 0.1, -0.05)  # two species, thresholds apart
    threshold = threshold_for_truth_share(ranked, labelled.truth, offsets)
    assert new_share_at(ranked, threshold + offsets) == pytest.approx(_true_share(labelled.truth), abs=1e-9)
    assert new_share_at(ranked, threshold) != pytest.approx(_true_share(labelled.truth), abs=1e-9)


def test_the_threshold_lies_midway_between_the_last_new_and_the_next_score():
    scores = np.array([[0.9], [0.2], [0.5], [0.4]], dtype=np.float32)
    ranked = RankedIndividuals(np.array([["a"], ["b"], ["c"], ["d"]], dtype=object), scores)
    truth = ["a", NEW_INDIVIDUAL, "c", NEW_INDIVIDUAL]  # two of four: the two lowest scores (0.2, 0.4) get it
    assert threshold_for_truth_share(ranked, truth) == pytest.approx(0.45)
    assert threshold_for_truth_share(ranked, ["a", "b", "c", "d"]) == pytest.approx(0.2)  # none below the lowest
    assert threshold_for_truth_share(ranked, [NEW_INDIVIDUAL] * 4) == float("inf")
    with pytest.raises(InputError, match="4 ranked queries but 3 truth"):
        threshold_for_truth_share(ranked, truth[:3])
