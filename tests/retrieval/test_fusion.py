"""Calibrated fusion of global similarity and local evidence, and the one answer path built on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from whale_core import InputError
from whale_retrieval import NEW_INDIVIDUAL, PostProcessing, insert_new_individual, rank_individuals
from whale_retrieval.answers import AnswerRule, shortlist_references
from whale_retrieval.calibration import PairCalibrator, fit_calibrator
from whale_retrieval.fusion import fit_fusion, labelled_pairs
from whale_retrieval.postprocess import StackedNeighbours
from whale_retrieval.ranking import most_frequent_ids

FEATURES = ("similarity", "inliers_fullbody", "inliers_backfin")


def synthetic_pairs(n: int = 3000, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pairs whose similarity and inliers are both informative; backfin weaker than fullbody."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.2
    evidence = {
        "similarity": np.where(same, rng.normal(0.7, 0.1, n), rng.normal(0.45, 0.1, n)),
        "inliers_fullbody": np.where(same, rng.poisson(25, n), rng.poisson(3, n)),
        "inliers_backfin": np.where(same, rng.poisson(8, n), rng.poisson(3, n)),
    }
    return evidence, same


@pytest.mark.parametrize("kind", ["logistic", "isotonic"])
def test_calibrator_is_monotone_in_each_input(kind):
    evidence, same = synthetic_pairs()
    calibrator = fit_calibrator(evidence, same, FEATURES, kind)
    base = {"similarity": np.full(50, 0.55), "inliers_fullbody": np.full(50, 5.0), "inliers_backfin": np.full(50, 4.0)}
    sweeps = {"similarity": np.linspace(0.0, 1.0, 50), "inliers_fullbody": np.arange(50.0),
              "inliers_backfin": np.arange(50.0)}  # fmt: skip
    for name, values in sweeps.items():
        p = calibrator.predict({**base, name: values})
        assert np.all(np.diff(p) >= -1e-12), name
        assert p.min() >= 0.0 and p.max() <= 1.0
    strong = calibrator.predict({"similarity": [0.75], "inliers_fullbody": [30], "inliers_backfin": [9]})
    weak = calibrator.predict({"similarity": [0.45], "inliers_fullbody": [2], "inliers_backfin": [2]})
    assert strong[0] > 0.9 and weak[0] < 0.1


def test_logistic_drops_an_input_that_would_lower_the_probability():
    evidence, same = synthetic_pairs()
    evidence["inliers_backfin"] = np.where(same, 0, 20)  # anti-correlated: a negative coefficient if kept
    calibrator = fit_calibrator(evidence, same, FEATURES, "logistic")
    assert calibrator.coef[2] == 0.0 and calibrator.coef[0] > 0 and calibrator.coef[1] > 0


def test_logistic_matches_the_formula_and_round_trips():
    evidence, same = synthetic_pairs()
    calibrator = fit_calibrator(evidence, same, FEATURES, "logistic")
    x = np.stack([evidence["similarity"], np.log1p(evidence["inliers_fullbody"]),
                  np.log1p(evidence["inliers_backfin"])], axis=1)  # fmt: skip
    expected = 1 / (1 + np.exp(-(x @ np.asarray(calibrator.coef) + calibrator.intercept)))
    np.testing.assert_allclose(calibrator.predict(evidence), expected, rtol=1e-12)
    for kind in ("logistic", "isotonic"):
        fitted = fit_calibrator(evidence, same, FEATURES, kind)
        again = PairCalibrator.from_dict(fitted.to_dict())
        np.testing.assert_array_equal(again.predict(evidence), fitted.predict(evidence))


def test_calibrator_refuses_bad_inputs():
    evidence, same = synthetic_pairs(200)
    with pytest.raises(InputError, match="all different"):
        fit_calibrator(evidence, np.zeros(200, bool), FEATURES)
    with pytest.raises(InputError, match="unknown kind"):
        fit_calibrator(evidence, same, FEATURES, "svm")
    with pytest.raises(InputError, match="NaN"):
        fit_calibrator({**evidence, "similarity": np.full(200, np.nan)}, same, FEATURES)
    with pytest.raises(InputError, match="no 'inliers_backfin'"):
        fit_calibrator({"similarity": evidence["similarity"], "inliers_fullbody": evidence["inliers_fullbody"]},
                       same, FEATURES)  # fmt: skip


def test_rule_without_calibrator_is_the_similarity_rule():
    rng = np.random.default_rng(3)
    labels = np.asarray([f"w{i % 7}" for i in range(40)])
    sims = -np.sort(-rng.random((12, 20)), axis=1).astype(np.float32)
    idx = np.stack([rng.permutation(40)[:20] for _ in range(12)])
    post = PostProcessing(threshold=0.6, k_neighbors=15)
    got = AnswerRule(post).apply(sims, idx, labels)
    ranked = rank_individuals(sims[:, :15], idx[:, :15], labels, 5)
    assert got.ids == insert_new_individual(ranked, 0.6, 5, pad_ids=most_frequent_ids(labels.tolist(), 6))
    assert AnswerRule(post).scale == "similarity"


def test_local_evidence_reorders_a_wrong_global_ranking():
    """The global ranking puts a look-alike first; the true animal's photo has the inliers: it must win."""
    labels = np.asarray(["lookalike", "truth", "other", "fourth", "fifth", "sixth"])
    sims = np.asarray([[0.80, 0.74, 0.70, 0.60, 0.50, 0.40]], dtype=np.float32)
    idx = np.asarray([[0, 1, 2, 3, 4, 5]])
    calibrator = PairCalibrator("logistic", FEATURES[:2], coef=(4.0, 2.0), intercept=-8.0)
    rule = AnswerRule(PostProcessing(threshold=0.5, k_neighbors=6), calibrator, shortlist=3)
    evidence = {"inliers_fullbody": np.asarray([[2, 40, 3]])}
    answers = rule.apply(sims, idx, labels, evidence=evidence)
    assert answers.ids[0][0] == "truth"
    assert answers.ranked.ids[0][0] == "truth" and answers.ranked.scores[0][0] > 0.5
    # Without the inliers nothing clears the probability threshold: new_individual comes first.
    flat = rule.apply(sims, idx, labels, evidence={"inliers_fullbody": np.zeros((1, 3))})
    assert flat.ids[0][0] == NEW_INDIVIDUAL
    assert rule.scale == "probability" and AnswerRule.from_dict(rule.to_dict()) == rule


def test_rule_refuses_evidence_of_the_wrong_shape():
    calibrator = PairCalibrator("logistic", FEATURES[:2], coef=(1.0, 1.0))
    rule = AnswerRule(PostProcessing(threshold=0.5, k_neighbors=4), calibrator, shortlist=3)
    sims, idx = np.ones((2, 4), np.float32), np.zeros((2, 4), np.int64)
    with pytest.raises(InputError, match="inliers_fullbody"):
        rule.apply(sims, idx, ["a"], evidence={"inliers_fullbody": np.zeros((2, 2))})


def stacked_problem(n_query: int = 90, seed: int = 1) -> tuple[StackedNeighbours, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    gallery_labels = np.asarray([f"w{i // 3}" for i in range(60)])
    truth, sims, idx, inliers = [], [], [], []
    for _ in range(n_query):
        who = int(rng.integers(0, 20))
        truth.append(f"w{who}")
        order = rng.permutation(60)[:10]
        order[rng.integers(0, 10)] = 3 * who  # one photo of the true animal somewhere in the shortlist
        row_sims = np.sort(rng.random(10))[::-1]
        sims.append(row_sims)
        idx.append(order)
        inliers.append(np.where(gallery_labels[order] == f"w{who}", rng.poisson(30, 10), rng.poisson(2, 10)))
    stacked = StackedNeighbours(np.asarray(sims, np.float32), np.asarray(idx), gallery_labels, None, truth)
    return stacked, {"inliers_fullbody": np.asarray(inliers)}


def test_fit_fusion_cross_fits_over_folds():
    stacked, evidence = stacked_problem()
    folds = np.arange(len(stacked.sims)) % 3
    fused, final = fit_fusion(stacked, evidence, folds, FEATURES[:2], "logistic", k_neighbors=10)
    width = evidence["inliers_fullbody"].shape[1]
    references = shortlist_references(evidence, stacked.idx[:, :width] >= 0)
    pairs = labelled_pairs(stacked, evidence, references)
    assert final == dataclasses.replace(fit_calibrator(pairs.evidence, pairs.same, FEATURES[:2], "logistic"),
                                        references=references)  # fmt: skip
    assert PairCalibrator.from_dict(final.to_dict()) == final
    # Fold 0's fused scores come from a calibrator fitted on folds 1 and 2 only.
    held_out = pairs.take(folds[pairs.query_row] != 0)
    fold0 = fit_calibrator(held_out.evidence, held_out.same, FEATURES[:2], "logistic")
    fold0 = dataclasses.replace(fold0, references=references)
    rows = np.flatnonzero(folds == 0)
    expected = AnswerRule(PostProcessing(0.5, 10), fold0, 10).fuse(
        stacked.sims[rows], stacked.idx[rows], {"inliers_fullbody": evidence["inliers_fullbody"][rows]}
    )
    np.testing.assert_array_equal(fused.sims[rows], expected[0])
    np.testing.assert_array_equal(fused.idx[rows], expected[1])
    top1 = fused.gallery_labels[fused.idx[:, 0]]
    assert (top1 == np.asarray(stacked.truth)).mean() > 0.95  # the local evidence finds the true animal
    with pytest.raises(InputError, match="only one fold"):
        fit_fusion(stacked, evidence, np.zeros(len(folds), int), FEATURES[:2], "logistic", 10)


def test_a_short_shortlist_leans_on_the_typical_reference():
    """Oracle: reference = (n · shortlist median + 10 · typical median) / (n + 10) for n verified candidates."""
    from whale_retrieval.answers import REFERENCE_PRIOR_WEIGHT, with_excess

    inliers = np.array([[300, 150, 0, 0], [300, 8, 8, 8]])
    valid = np.array([[True, True, False, False], [True, True, True, True]])
    typical = shortlist_references({"inliers_fullbody": inliers}, valid)
    assert typical == {"inliers_fullbody": (225.0 + 8.0) / 2}
    got = with_excess({"inliers_fullbody": inliers}, valid, {"inliers_fullbody": 8.0})["excess_fullbody"]
    w = REFERENCE_PRIOR_WEIGHT
    assert got[0, 0] == pytest.approx(300 - (2 * 225 + w * 8) / (2 + w))
    assert got[1, 0] == pytest.approx(300 - (4 * 8 + w * 8) / (4 + w))
    assert (got[0, 2:] == 0).all()


def test_excess_is_the_count_above_the_query_shortlist_median():
    from whale_retrieval.answers import with_excess

    inliers = np.asarray([[30, 6, 4, 5, 9], [3, 3, 3, 0, 0]])
    valid = np.asarray([[True] * 5, [True, True, True, False, False]])
    got = with_excess({"inliers_fullbody": inliers}, valid)
    np.testing.assert_array_equal(got["excess_fullbody"], [[24, 0, 0, 0, 3], [0, 0, 0, 0, 0]])  # medians 6 and 3
    np.testing.assert_array_equal(got["inliers_fullbody"], inliers)


def test_rule_with_excess_inputs_prefers_the_standout_candidate():
    """Every candidate shares 20 'species' inliers; the one with 35 stands out and wins despite a lower similarity."""
    labels = np.asarray(["a", "b", "c", "d", "e"])
    sims = np.asarray([[0.9, 0.85, 0.8, 0.75, 0.7]], dtype=np.float32)
    idx = np.arange(5)[None]
    calibrator = PairCalibrator("logistic", ("similarity", "excess_fullbody"), coef=(1.0, 3.0), intercept=-6.0)
    rule = AnswerRule(PostProcessing(threshold=0.5, k_neighbors=5), calibrator, shortlist=5)
    answers = rule.apply(sims, idx, labels, evidence={"inliers_fullbody": np.asarray([[20, 21, 35, 20, 19]])})
    assert answers.ids[0][0] == "c"
    assert answers.best_rows(labels)[0][0] == 2


def _outline_pairs(n: int, seed: int = 0):
    """Pairs whose similarity and outline are independent given the label (equal-variance Gaussians), the
    outline missing at random for 40 % of them (NaN, traced 0)."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.3
    similarity = rng.normal(np.where(same, 0.6, 0.4), 0.1)
    outline = rng.normal(np.where(same, -0.05, -0.10), 0.02)
    traced = rng.random(n) < 0.6
    evidence = {"similarity": similarity, "outline_backfin": np.where(traced, outline, np.nan)}
    return evidence | {"traced_backfin": traced.astype(float)}, same


@pytest.mark.parametrize("kind", ["logistic", "isotonic"])
def test_a_missing_outline_is_no_evidence_either_way(kind):
    """Oracle: with the inputs independent given the label and the outline missing at random, P(same) of a pair
    without an outline is P(same | similarity) — what a calibrator fitted on the similarity alone gives — while a
    close outline raises it and a far one lowers it."""
    evidence, same = _outline_pairs(40_000)
    with_outline = fit_calibrator(evidence, same, ["similarity", "outline_backfin", "traced_backfin"], kind)
    alone = fit_calibrator(evidence, same, ["similarity"], kind)
    sims = np.linspace(0.3, 0.7, 9)

    def p_same(outline: float) -> np.ndarray:
        traced = np.full(9, float(np.isfinite(outline)))
        evidence = {"similarity": sims, "outline_backfin": np.full(9, outline), "traced_backfin": traced}
        return with_outline.predict(evidence)

    missing, close, far = p_same(np.nan), p_same(-0.03), p_same(-0.13)
    assert np.allclose(missing, alone.predict({"similarity": sims}), atol=0.03)
    assert (close > missing).all() and (far < missing).all()


def test_outline_evidence_flows_through_the_rule():
    """The rule reads `outline_<region>` and derives `traced_<region>`: a candidate with a close outline is
    lifted above one with the same similarity and a missing outline, which stays above a far one."""
    evidence, same = _outline_pairs(20_000, seed=1)
    calibrator = fit_calibrator(evidence, same, ["similarity", "outline_backfin", "traced_backfin"])
    rule = AnswerRule(PostProcessing(0.5, 3), calibrator, shortlist=3)
    sims = np.full((1, 3), 0.5, np.float32)
    idx = np.array([[0, 1, 2]])
    fused, order = rule.fuse(sims, idx, {"outline_backfin": np.array([[np.nan, -0.13, -0.03]])})
    assert order.tolist() == [[2, 0, 1]]
    with pytest.raises(InputError, match="outline_backfin"):
        rule.fuse(sims, idx, {"inliers_backfin": np.zeros((1, 3))})
