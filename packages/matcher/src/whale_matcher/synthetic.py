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


def fin_polygon(seed: int, n_points: int = 120) -> np.ndarray:
    """A dorsal fin and a strip of back as a polygon in fin units (x along the back, y up; the fin ~1 tall).

    The animal `seed` decides the fin's sweep, tip and 1–4 trailing-edge nicks (position, depth, width): the
    marks outline matching must tell apart.
    """
    rng = np.random.default_rng(seed)
    h = np.linspace(0.0, 1.0, n_points)
    tip_x = rng.uniform(0.45, 0.75)
    leading_x = tip_x * h ** rng.uniform(1.2, 2.0)
    trailing_x = tip_x + rng.uniform(0.35, 0.6) * (1.0 - h) - rng.uniform(0.0, 0.25) * np.sin(np.pi * h)
    for _ in range(int(rng.integers(1, 5))):
        pos, depth, width = rng.uniform(0.15, 0.85), rng.uniform(0.03, 0.09), rng.uniform(0.05, 0.14)
        trailing_x = trailing_x - depth * np.clip(1.0 - np.abs(h - pos) / (width / 2), 0.0, None)
    leading = np.column_stack([leading_x, h])
    trailing = np.column_stack([np.maximum(trailing_x, leading_x + 0.02), h])[::-1]
    end = trailing[-1, 0]
    back = np.array([[end + 0.8, -0.05], [end + 0.8, -0.6], [-0.8, -0.6], [-0.8, -0.05]])
    return np.vstack([leading, trailing, back])


def fin_crop(
    seed: int, *, photo_seed: int = 0, angle_deg: float = 0.0, scale: float = 1.0, mirror: bool = False,
    height_px: int = 160,
) -> np.ndarray:  # fmt: skip
    """RGB crop of animal `seed`'s fin above water, framed as a fin detector frames it (the fin and its root,
    5 % margin), after rotating the animal by `angle_deg`, mirroring it (the other flank) and scaling the photo.

    `scale` scales the photo (the crop is `scale × height_px` pixels tall: a farther animal has fewer pixels);
    `photo_seed` draws the sea, the skin tone and the noise (nothing of the animal's identity).
    """
    rng = np.random.default_rng(10_000 + photo_seed)
    rot = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    poly = (fin_polygon(seed) * np.array([-1.0 if mirror else 1.0, 1.0])) @ rotation.T
    fin_part = poly[:-4][(fin_polygon(seed)[:-4, 1] >= 0.0)]
    low, high = fin_part.min(axis=0), fin_part.max(axis=0)
    low[1] -= 0.25  # the root band below the fin, as the demo's fin boxes hold it
    span = high - low
    low, high = low - 0.05 * span, high + 0.05 * span
    unit = scale * height_px / (high[1] - low[1])
    width, height = int(round((high[0] - low[0]) * unit)), int(round(scale * height_px))
    pixels = (poly - np.array([low[0], high[1]])) * np.array([unit, -unit])
    sea = np.array([30, 70, 100], np.float32) + rng.uniform(-15, 15, 3)
    img = np.empty((height, width, 3), np.float32)
    img[:] = sea
    img += cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 3)[..., None] * 12
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(pixels * 16).astype(np.int32)], 1, shift=4)
    img[mask > 0] = np.float32(rng.uniform(60, 110)) + rng.normal(0, 4, (int(mask.sum()), 1))
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
