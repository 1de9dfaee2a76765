"""The bf16 ratio test against a float64 oracle, on descriptors built to sit at the ratio boundary."""

import numpy as np
import pytest

from whale_matcher import Features, MatcherConfig
from whale_matcher._batch import ratio_matches

RATIO = 0.8


def _gallery(rng, queries: np.ndarray, closeness: np.ndarray, keypoints: int = 40) -> Features:
    """One gallery photo per (query row, closeness t): two keypoints at distances a and b = a / (t · RATIO)
    from the query descriptor (so d1 / d2 = t · RATIO), the rest far away; some photos hold an exact tie."""
    descs = []
    for t in closeness:
        for q in queries:
            a = rng.uniform(0.05, 0.3)
            near = [q + a * _unit(rng), q + a / (t * RATIO) * _unit(rng)]
            far = [q + rng.uniform(1.0, 2.0) * _unit(rng) for _ in range(keypoints - 2)]
            photo = np.array(near + far, np.float32)
            descs.append(photo[rng.permutation(keypoints)])
    tie = np.array([queries[0] + 0.1 * _unit(rng)] * 2 + [queries[0] + 1.5 * _unit(rng)] * 3, np.float32)
    descs.append(tie)  # two identical nearest keypoints: d1 = d2, never a match
    offsets = np.cumsum([0] + [len(d) for d in descs])
    desc = np.concatenate(descs)
    n = len(descs)
    xy = rng.uniform(0, 100, (len(desc), 2)).astype(np.float32)
    return Features(np.array([f"g{i}" for i in range(n)]), offsets, xy, desc, np.full((n, 2), 100, np.int32))


def _unit(rng, dim: int = 128) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def _oracle(query: np.ndarray, gallery: Features) -> tuple[np.ndarray, np.ndarray]:
    """(ok [n, K], partner [n, K]) by float64 distances of the stored float32 values: d1 < RATIO · d2."""
    ok = np.zeros((len(query), len(gallery)), bool)
    partner = np.zeros_like(ok, dtype=np.int64)
    for k in range(len(gallery)):
        start, stop = gallery.offsets[k : k + 2]
        g = gallery.desc[start:stop].astype(np.float64)
        dist = np.sqrt(((query.astype(np.float64)[:, None, :] - g[None]) ** 2).sum(-1))
        order = np.argsort(dist, axis=1, kind="stable")
        d1, d2 = np.take_along_axis(dist, order[:, :2], axis=1).T
        ok[:, k], partner[:, k] = d1 < RATIO * d2, start + order[:, 0]
    return ok, partner


@pytest.mark.parametrize("scale", [1.0, 512.0])  # RootSIFT-like unit rows, and raw SIFT's magnitude
def test_bf16_and_fp32_ratio_tests_equal_float64_at_the_boundary(scale):
    rng = np.random.default_rng(0)
    queries = np.abs(rng.standard_normal((6, 128)))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    closeness = np.array([0.5, 0.9, 0.99, 0.999, 0.9999, 1.0001, 1.001, 1.01, 1.1, 2.0])
    gallery = _gallery(rng, queries, closeness)
    gallery = Features(gallery.image, gallery.offsets, gallery.xy, gallery.desc * scale, gallery.size)
    query = (queries * scale).astype(np.float32)
    ok, partner = _oracle(query, gallery)
    assert 0 < ok.sum() < ok.size and not ok[:, -1].any()
    rows = np.arange(len(gallery))
    ((fp32_ok, fp32_partner),) = ratio_matches([query], gallery, rows, MatcherConfig(ratio=RATIO, matmul="fp32"))
    ((bf16_ok, bf16_partner),) = ratio_matches([query], gallery, rows, MatcherConfig(ratio=RATIO, matmul="bf16"))
    # Both equal float64 wherever d1 / d2 is not within 2e-4 of the ratio: there fp32 rounding (of any fp32
    # matcher, BFMatcher's too) may go either way; bf16 decides only what its bound proves, fp32 the rest.
    resolved = np.r_[np.repeat(np.abs(closeness - 1) > 2e-4, len(queries)), True]
    for got_ok, got_partner in ((fp32_ok, fp32_partner), (bf16_ok, bf16_partner)):
        np.testing.assert_array_equal(got_ok[:, resolved], ok[:, resolved])
        np.testing.assert_array_equal(got_partner[ok], partner[ok])
