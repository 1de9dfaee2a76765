"""Synthetic textured crops with known warps: the matcher's tests and benchmark use the same ones.

Band-passed noise plus random ellipses and lines gives SIFT many distinctive keypoints, so a warped
(rotated, scaled, shifted) copy of a texture is a clear positive and another texture a clear negative.
"""

from __future__ import annotations

import cv2
import numpy as np

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


def similarity(
    angle_deg: float = 10.0, scale: float = 0.9, shift: tuple[float, float] = (6.0, -4.0), size=(WIDTH, HEIGHT)
) -> np.ndarray:
    """2×3 similarity about the centre of a crop of `size` (width, height), then shifted."""
    model = cv2.getRotationMatrix2D((size[0] / 2, size[1] / 2), angle_deg, scale)
    model[:, 2] += shift
    return model


def warp(img: np.ndarray, model: np.ndarray) -> np.ndarray:
    """The crop warped by a 2×3 model, same size, borders reflected."""
    return cv2.warpAffine(img, model, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)
