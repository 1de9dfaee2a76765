"""A restricted search is the exact search of the allowed rows, in whole-gallery indices, padded with -inf / -1."""

from __future__ import annotations

import numpy as np

from whale_retrieval import (
    NEW_INDIVIDUAL,
    AnswerRule,
    PostProcessing,
    RetrievalSplit,
    fit_calibrator,
    knn_search,
    knn_search_allowed,
    stack_splits,
)


def _unit(rng: np.random.Generator, n: int, d: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_each_query_is_searched_exactly_on_its_allowed_rows() -> None:
    rng = np.random.default_rng(5)
    query, gallery = _unit(rng, 5), _unit(rng, 10)
    even = np.arange(10) % 2 == 0
    two_rows = np.isin(np.arange(10), [3, 7])
    restrictions = [(np.array([0, 3]), even), (np.array([1]), None), (np.array([2, 4]), two_rows)]
    sims, idx = knn_search_allowed(query, gallery, 4, restrictions)

    assert sims.shape == idx.shape == (5, 4)
    full_sims, full_idx = knn_search(query[[1]], gallery, 4)  # unrestricted: the plain search
    assert np.array_equal(idx[1], full_idx[0]) and np.array_equal(sims[1], full_sims[0])
    brute = query[[0, 3]] @ gallery[even].T  # the oracle: a sort of the allowed rows' similarities
    assert np.array_equal(idx[[0, 3]], np.flatnonzero(even)[np.argsort(-brute, axis=1)[:, :4]])
    assert set(idx[[2, 4], :2].ravel()) == {3, 7}  # two allowed rows, then nothing
    assert (idx[[2, 4], 2:] == -1).all() and np.isneginf(sims[[2, 4], 2:]).all()


def test_a_restricted_split_stacks_its_padding_as_minus_one_and_its_truth_as_seen_through_the_restriction() -> None:
    rng = np.random.default_rng(6)
    first = RetrievalSplit(_unit(rng, 2), ["a", "b"], _unit(rng, 3), ["a", "b", "c"])
    only_row_2 = np.array([False, False, True])  # query "b" may match only the photo of "c"
    restrictions = [(np.array([0]), None), (np.array([1]), only_row_2)]
    second = RetrievalSplit(_unit(rng, 2), ["a", "b"], _unit(rng, 3), ["a", "b", "c"], restrictions=restrictions)
    stacked = stack_splits([first, second], 3)

    assert stacked.truth == ["a", "b", "a", NEW_INDIVIDUAL]  # b's photo is barred: nothing to find
    assert stacked.idx[3].tolist() == [5, -1, -1]  # row 2 of the second gallery; padding is not offset
    assert sorted(stacked.idx[2].tolist()) == [3, 4, 5]


def test_the_calibrated_fusion_scores_a_restricted_search_with_its_padding() -> None:
    """A query allowed two rows (then -inf / -1) and one allowed none: their real pairs are scored as unpadded."""
    rng = np.random.default_rng(7)
    n = 400
    same = rng.random(n) < 0.3
    pairs = {
        "similarity": np.where(same, 0.7, 0.4) + rng.normal(0, 0.1, n),
        "inliers_fullbody": np.where(same, 20.0, 3.0) + rng.poisson(2, n),
    }
    calibrator = fit_calibrator(pairs, same, ["similarity", "inliers_fullbody"], "logistic")
    rule = AnswerRule(PostProcessing(0.5, 4), calibrator, shortlist=3)
    query, gallery = _unit(rng, 3), _unit(rng, 10)
    two_rows, no_row = np.isin(np.arange(10), [2, 5]), np.zeros(10, bool)
    restrictions = [(np.array([0]), None), (np.array([1]), two_rows), (np.array([2]), no_row)]
    sims, idx = knn_search_allowed(query, gallery, 4, restrictions)
    inliers = np.where(idx[:, :3] >= 0, (idx[:, :3] * 3) % 11, 0).astype(float)
    fused, order = rule.fuse(sims, idx, {"inliers_fullbody": inliers})

    alone, alone_order = rule.fuse(sims[[1], :2], idx[[1], :2], {"inliers_fullbody": inliers[[1], :2]})
    assert np.array_equal(order[1, :2], alone_order[0]) and np.allclose(fused[1, :2], alone[0])
    assert (order[1, 2:] == -1).all() and np.isneginf(fused[1, 2:]).all()
    assert (order[2] == -1).all() and np.isneginf(fused[2]).all()  # allowed nothing: nothing to answer with
    assert np.isfinite(fused[0]).all()
