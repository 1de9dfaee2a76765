import numpy as np
import pytest

from tests.matcher.conftest import N_TEXTURES, row
from whale_core import InputError
from whale_matcher import (
    MatcherConfig,
    PairEvidence,
    draw_matches,
    extract_features,
    match_pair,
    match_photos,
    verify_pairs,
)
from whale_matcher.reference import reference_pairs
from whale_matcher.synthetic import WIDTH, similarity

CFG = MatcherConfig()


def _pairs(feats, names):
    return np.array([(row(feats, a), row(feats, b)) for a, b in names])


def test_warped_copy_has_many_inliers_and_the_known_transform(feats):
    ev = verify_pairs(feats, feats, _pairs(feats, [("t0", "w0"), ("t2", "w2"), ("t0", "t1")]), CFG, progress=False)
    assert isinstance(ev, PairEvidence) and len(ev) == 3
    assert ev.inliers.dtype == np.int32 and ev.matches.dtype == np.int32 and ev.inlier_ratio.dtype == np.float32
    assert ev.inliers[0] >= 30 and ev.inliers[1] >= 30 and ev.inliers[2] <= 5
    assert not ev.mirrored[:2].any() and ev.inlier_ratio[0] > 0.8
    src, dst, model = match_pair(*feats.keypoints(row(feats, "t0")), *feats.keypoints(row(feats, "w0")), CFG)
    assert len(src) == len(dst) == ev.inliers[0]
    known = similarity()
    np.testing.assert_allclose(model[:, :2], known[:, :2], atol=0.03)  # rotation and scale within 3 %
    np.testing.assert_allclose(model[:, 2], known[:, 2], atol=3.0)  # shift within 3 px
    np.testing.assert_allclose(src @ known[:, :2].T + known[:, 2], dst, atol=CFG.reproj_px)


def test_different_textures_have_few_inliers(feats):
    names = [(f"t{i}", f"t{j}") for i in range(N_TEXTURES) for j in range(N_TEXTURES) if i != j]
    ev = verify_pairs(feats, feats, _pairs(feats, names), CFG, progress=False)
    assert ev.inliers.max() <= 5 and np.median(ev.inliers) <= 3


def test_mirrored_copy_is_matched_only_with_mirror(feats):
    pairs = _pairs(feats, [("t0", "m0")])
    on = verify_pairs(feats, feats, pairs, CFG, progress=False)
    off = verify_pairs(feats, feats, pairs, CFG.replace(mirror=False), progress=False)
    assert on.mirrored[0] and on.inliers[0] >= 30
    assert not off.mirrored[0] and off.inliers[0] <= 5
    # drawn on the unflipped crops: the query point x maps to w - 1 - x on the mirror image
    qpts, gpts, model, mirrored = match_photos(feats, row(feats, "t0"), feats, row(feats, "m0"), CFG)
    assert mirrored and len(qpts) == on.inliers[0] and model is not None
    np.testing.assert_allclose(gpts[:, 0], WIDTH - 1 - qpts[:, 0], atol=1.0)
    np.testing.assert_allclose(gpts[:, 1], qpts[:, 1], atol=1.0)


def test_flat_crop_scores_zero(feats):
    names = [("flat", "t0"), ("t0", "flat"), ("flat", "flat")]
    ev = verify_pairs(feats, feats, _pairs(feats, names), CFG, progress=False)
    assert (ev.inliers == 0).all() and (ev.matches == 0).all() and (ev.inlier_ratio == 0).all()
    src, dst, model = match_pair(*feats.keypoints(row(feats, "flat")), *feats.keypoints(row(feats, "t0")), CFG)
    assert src.shape == (0, 2) and model is None


def _mixed_pairs(feats, seed=0, candidates=16):
    """Every texture/warp/mirror/flat photo as query against random candidates (positives included)."""
    rng = np.random.default_rng(seed)
    n = len(feats)
    pairs = [(q, g) for q in range(n) for g in rng.choice(n, candidates, replace=False)]
    pairs += [(row(feats, f"t{i}"), row(feats, f"w{i}")) for i in range(0, N_TEXTURES, 2)]
    pairs = np.array(pairs)
    return pairs[rng.permutation(len(pairs))]


@pytest.mark.parametrize("mutual, matmul", [(False, "fp32"), (False, "bf16"), (True, "auto")])
def test_batched_equals_the_per_pair_reference(feats, mutual, matmul):
    cfg = CFG.replace(mutual=mutual, matmul=matmul)
    pairs = _mixed_pairs(feats, candidates=6 if mutual else 16)
    ev = verify_pairs(feats, feats, pairs, cfg, progress=False)
    matches, inliers, mirrored = reference_pairs(feats, feats, pairs, cfg)
    np.testing.assert_array_equal(ev.matches, matches)
    assert np.mean(np.abs(ev.inliers - inliers) <= 1) >= 0.99
    assert np.mean(ev.mirrored == mirrored) >= 0.99
    assert (ev.inliers >= 30).sum() >= N_TEXTURES // 2  # the positives are in there


def test_workers_give_the_same_answer(feats):
    pairs = _mixed_pairs(feats, seed=1)  # ~500 pairs: two worker tasks
    one = verify_pairs(feats, feats, pairs, CFG, progress=False)
    two = verify_pairs(feats, feats, pairs, CFG.replace(workers=2), progress=False)
    for name in ("matches", "inliers", "inlier_ratio", "mirrored"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    empty = verify_pairs(feats, feats, np.zeros((0, 2), np.int64), CFG, progress=False)
    assert len(empty) == 0


def test_orb_matches_with_hamming(crop_paths):
    names = ["t0", "w0", "t1", "t2"]
    orb = MatcherConfig(extractor="orb")
    feats = extract_features(names, [crop_paths[n] for n in names], orb, progress=False)
    pairs = np.array([(0, 1), (0, 2), (0, 3), (1, 0), (2, 3)])
    ev = verify_pairs(feats, feats, pairs, orb, progress=False)
    assert ev.inliers[0] >= 30 and ev.inliers[1:3].max() <= 5
    matches, inliers, _ = reference_pairs(feats, feats, pairs, orb)
    np.testing.assert_array_equal(ev.matches, matches)
    assert (np.abs(ev.inliers - inliers) <= 1).all()


def test_bad_inputs_are_refused(feats, crop_paths):
    with pytest.raises(ValueError, match="pairs"):
        verify_pairs(feats, feats, np.array([[0, len(feats)]]), CFG, progress=False)
    orb = extract_features(["t0"], [crop_paths["t0"]], MatcherConfig(extractor="orb"), progress=False)
    orb_plain = extract_features(
        ["t0"], [crop_paths["t0"]], MatcherConfig(extractor="orb", mirror=False), progress=False
    )
    with pytest.raises(InputError, match="mirror"):  # binary descriptors: the flip must have been described
        verify_pairs(orb_plain, orb, np.array([[0, 0]]), CFG, progress=False)
    with pytest.raises(InputError, match="extractor"):
        verify_pairs(orb, feats, np.array([[0, 0]]), CFG, progress=False)


def test_draw_matches(crops, feats):
    qpts, gpts, _, _ = match_photos(feats, row(feats, "t0"), feats, row(feats, "w0"), CFG)
    rgb = np.stack([crops["t0"]] * 3, axis=-1)
    canvas = draw_matches(rgb, crops["w0"], qpts, gpts, height=80)
    assert canvas.dtype == np.uint8 and canvas.shape == (80, 2 * 128, 3)
    bare = draw_matches(rgb, crops["w0"], qpts[:0], gpts[:0], height=80)
    assert (canvas != bare).any(axis=-1).mean() > 0.05  # the lines are drawn
    assert (bare[..., 0] == bare[..., 1]).all()  # gray crops stay gray without lines
