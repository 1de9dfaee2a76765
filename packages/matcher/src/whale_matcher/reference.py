"""The plain per-pair recipe `verify_pairs` must agree with: the oracle of its tests and benchmark.

Per pair and orientation: `cv2.BFMatcher.knnMatch(k=2)`, Lowe's ratio test (and the mutual check if
asked), `cv2.estimateAffinePartial2D` with RANSAC; with mirror, the mirrored query wins only with
strictly more inliers. One OpenCV call per pair: slow, which is why `verify_pairs` batches.
"""

from __future__ import annotations

import cv2
import numpy as np

from whale_matcher.config import MatcherConfig
from whale_matcher.features import Features


def reference_orientation(qxy, qdesc, gxy, gdesc, cfg: MatcherConfig) -> tuple[int, int]:
    """(matches, inliers) of one pair in one orientation by the plain recipe."""
    if len(qdesc) == 0 or len(gdesc) < 2:
        return 0, 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING if qdesc.dtype == np.uint8 else cv2.NORM_L2)
    knn = matcher.knnMatch(qdesc, gdesc, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < cfg.ratio * m[1].distance]
    if cfg.mutual:
        back = {m[0].queryIdx: m[0].trainIdx for m in matcher.knnMatch(gdesc, qdesc, k=1) if m}
        good = [m for m in good if back.get(m.trainIdx) == m.queryIdx]
    if len(good) < cfg.min_matches:
        return len(good), 0
    src = qxy[[m.queryIdx for m in good]]
    dst = gxy[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)
    _, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=cfg.reproj_px)
    return len(good), 0 if mask is None else int(mask.sum())


def reference_pairs(
    query: Features, gallery: Features, pairs: np.ndarray, cfg: MatcherConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matches, inliers, mirrored) per (query row, gallery row) pair, mirror handled like `verify_pairs`."""
    out = []
    for q, g in pairs:
        plain = reference_orientation(*query.keypoints(q), *gallery.keypoints(g), cfg)
        flipped = (0, 0)
        if cfg.mirror:
            flipped = reference_orientation(*query.flipped_keypoints(q), *gallery.keypoints(g), cfg)
        out.append((*flipped, True) if flipped[1] > plain[1] else (*plain, False))
    if not out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    matches, inliers, mirrored = (np.array(col) for col in zip(*out))
    return matches, inliers, mirrored
