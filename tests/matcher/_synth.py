"""Synthetic textured crops and the plain per-pair reference matcher the tests compare against."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from whale_matcher import MatcherConfig

WIDTH, HEIGHT = 256, 160


def texture(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A grayscale uint8 crop of band-passed noise plus random ellipses and lines: distinctive keypoints."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width), np.float32)
    for sigma, weight in ((1.5, 50.0), (4.0, 90.0)):
        noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma)
        img += weight * noise / noise.std()
    for _ in range(25):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(3, 20)), int(rng.integers(3, 20)))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(-120, 120)), -1)
    for _ in range(12):
        a = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        b = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(img, a, b, float(rng.uniform(-120, 120)), int(rng.integers(1, 4)))
    return np.clip(img + 128.0, 0, 255).astype(np.uint8)


def similarity(angle_deg: float = 10.0, scale: float = 0.9, shift: tuple[float, float] = (6.0, -4.0)) -> np.ndarray:
    """2×3 similarity about the crop centre, then shifted."""
    model = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), angle_deg, scale)
    model[:, 2] += shift
    return model


def warp(img: np.ndarray, model: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(img, model, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def write(folder: Path, name: str, gray: np.ndarray) -> Path:
    """Save a crop as PNG (RGB) and return its path."""
    path = folder / f"{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    return path


def reference_orientation(qxy, qdesc, gxy, gdesc, cfg: MatcherConfig) -> tuple[int, int]:
    """(matches, inliers) by the plain recipe: BFMatcher.knnMatch(k=2), Lowe ratio, estimateAffinePartial2D."""
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


def reference_pairs(query, gallery, pairs, cfg: MatcherConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matches, inliers, mirrored) per pair with the per-pair loop, mirror handled like verify_pairs."""
    out = []
    for q, g in pairs:
        plain = reference_orientation(*query.keypoints(q), *gallery.keypoints(g), cfg)
        flipped = (0, 0)
        if cfg.mirror:
            flipped = reference_orientation(*query.mirrored.keypoints(q), *gallery.keypoints(g), cfg)
        out.append((*flipped, True) if flipped[1] > plain[1] else (*plain, False))
    matches, inliers, mirrored = (np.array(col) for col in zip(*out))
    return matches, inliers, mirrored
