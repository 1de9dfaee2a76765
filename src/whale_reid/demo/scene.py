"""Photo conditions that carry no identity: water, waves, spray, light, blur, noise, JPEG quality.

Every function draws from the photo's own random generator, never from the animal's, so the
background and the degradations are independent of who is in the picture.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

#: Water colours (RGB) a photo's sea is drawn around: deep blue, teal, grey-green, slate, navy.
WATER_PALETTE = np.array([[24, 58, 96], [30, 84, 92], [72, 92, 86], [92, 102, 112], [16, 34, 56]], dtype=np.float32)
#: Sky colours (RGB) above a horizon: pale blue, overcast grey, haze, deeper blue.
SKY_PALETTE = np.array([[150, 182, 214], [178, 186, 194], [212, 216, 220], [112, 150, 196]], dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Zero-mean noise of unit scale, smooth over `size / cells` pixels (bicubic upsampling of a grid)."""
    grid = rng.standard_normal((cells[1], cells[0])).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize(size, Image.Resampling.BICUBIC), dtype=np.float32)


def water(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A sea surface as an (H, W, 3) float32 array: random colour, gradient, swell and ripple streaks."""
    width, height = size
    color = WATER_PALETTE[rng.integers(len(WATER_PALETTE))] + rng.uniform(-18, 18, 3).astype(np.float32)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    gradient = 1.0 + rng.uniform(-0.25, 0.25) * (rows - 0.5)
    swell = _smooth_noise(rng, size, (max(2, width // 90), max(2, height // 90))) * rng.uniform(4, 12)
    ripples = _smooth_noise(rng, size, (max(2, width // 40), max(2, height // 4))) * rng.uniform(5, 16)
    sea = color[None, None, :] * gradient[..., None] + (swell + ripples)[..., None]
    return np.clip(sea, 0, 255)


def with_sky(rng: np.random.Generator, sea: np.ndarray, horizon_px: float) -> np.ndarray:
    """`sea` (H, W, 3) with a sky above the row `horizon_px`: a random colour, paler near the horizon, soft clouds.

    The sea just below the horizon is hazed towards the sky's colour (it is far away).
    """
    height, width = sea.shape[:2]
    color = SKY_PALETTE[rng.integers(len(SKY_PALETTE))] + rng.uniform(-12, 12, 3).astype(np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    toward_horizon = np.clip(rows / max(horizon_px, 1.0), 0.0, 1.0)
    clouds = _smooth_noise(rng, (width, height), (max(2, width // 110), max(2, height // 45))) * rng.uniform(3, 12)
    sky = color * (0.9 + 0.15 * toward_horizon) + clouds[..., None]
    haze = np.clip(1.0 - (rows - horizon_px) / (0.25 * height), 0.0, 1.0) * rng.uniform(0.2, 0.5)
    hazed_sea = sea * (1.0 - haze) + color * haze
    return np.clip(np.where(rows < horizon_px, sky, hazed_sea), 0, 255)


def waterline(rng: np.random.Generator, width: int, level_px: float, difficulty: float) -> np.ndarray:
    """Per-column y of the water surface around `level_px`: a sum of two swells (higher when harder)."""
    x = np.arange(width, dtype=np.float32)
    amp = width * 0.012 * (0.5 + 1.5 * difficulty)
    y = np.full(width, level_px, dtype=np.float32)
    for _ in range(2):
        wavelength = width * rng.uniform(0.12, 0.45)
        y += amp * rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * x / wavelength + rng.uniform(0, 2 * np.pi))
    return y


def spray(rng: np.random.Generator, size: tuple[int, int], near_y: np.ndarray, difficulty: float) -> np.ndarray:
    """Alpha (H, W) float32 in [0, 1] of white spray droplets, densest along the waterline `near_y`."""
    width, height = size
    n_drops = int(rng.uniform(0.2, 1.0) * difficulty * width * height / 900)
    canvas = np.zeros((height, width), dtype=np.uint8)
    if n_drops == 0:
        return canvas.astype(np.float32)
    xs = rng.integers(0, width, n_drops)
    ys = np.clip(near_y[xs] - np.abs(rng.normal(0, height * 0.12, n_drops)), 0, height - 1).astype(int)
    canvas[ys, xs] = 255
    blurred = Image.fromarray(canvas).filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5)))
    alpha = np.asarray(blurred, dtype=np.float32)
    return np.clip(alpha / max(float(alpha.max()), 1e-6) * rng.uniform(0.6, 1.2), 0.0, 1.0)


def light_field(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A multiplicative (H, W) sunlight gradient from a random direction (about ±20%)."""
    width, height = size
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    return 1.0 + rng.uniform(0.05, 0.2) * (np.cos(angle) * xs + np.sin(angle) * ys)


def finish(rng: np.random.Generator, rgb: np.ndarray, difficulty: float) -> tuple[Image.Image, int]:
    """Exposure, colour cast, sensor noise and blur; returns the photo and the JPEG quality to save it with."""
    gain = rng.uniform(0.75, 1.2) * (1.0 + rng.uniform(-0.06, 0.06, 3)).astype(np.float32)
    contrast = rng.uniform(0.8, 1.15)
    mean = rgb.mean()
    out = (rgb - mean) * contrast + mean
    out = out * gain[None, None, :]
    out += rng.normal(0.0, 1.5 + 7.0 * difficulty, out.shape[:2])[..., None].astype(np.float32)
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    radius = rng.uniform(0.0, 0.3 + 1.3 * difficulty)
    if radius > 0.25:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    quality = int(rng.integers(int(95 - 55 * difficulty), 96))
    return img, quality
