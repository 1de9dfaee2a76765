"""Render a `top` photo: an animal without a dorsal fin (the beluga) seen from above, at the surface.

Its back, ridge, scars and pigment patches face the camera (`top_view.top_shapes`); the tail stock and
flukes are often already below the surface, cut at a rippled line across the body. Heading, side, scale,
placement, water, spray, light and blur come from the photo's own generator. Boxes are read from the drawn
masks: `fullbody` is the surfaced animal, `backfin` the ridge region.
"""

from __future__ import annotations

import numpy as np

from whale_reid.demo import scene
from whale_reid.demo.geometry import AnimalShapes
from whale_reid.demo.population import Individual
from whale_reid.demo.render import Photo, bbox, composite, draw_animal, photo_size
from whale_reid.demo.species import Species
from whale_reid.demo.top_view import top_shapes

#: The animal's heading in the photo, at most this many degrees off the horizontal.
MAX_HEADING_DEG = 35.0
#: Where the surface cuts the body, in body lengths from the tail stock (negative: the flukes show);
#: the beluga's ridge starts at 0.08, in front of the deepest cut plus its ripple.
TAIL_CUT = (-0.14, 0.04)
TAIL_CUT_RIPPLE = 0.015


def _top_pose(
    rng: np.random.Generator, shapes: AnimalShapes, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, float]:
    """A random affine map (2×2 matrix, offset) from the animal frame to pixels that keeps it inside; its scale."""
    width, height = size
    flip = -1.0 if rng.random() < 0.5 else 1.0  # heading left or right
    heading = np.deg2rad(rng.uniform(-MAX_HEADING_DEG, MAX_HEADING_DEG))
    rot = np.array([[np.cos(heading), -np.sin(heading)], [np.sin(heading), np.cos(heading)]])
    linear = rot @ np.array([[flip, 0.0], [0.0, -1.0]])
    points = shapes.body @ linear.T
    span = np.ptp(points, axis=0)
    scale = min(width * rng.uniform(0.55, 0.85) / span[0], height * 0.9 / span[1])
    margin = np.array(size) * 0.03
    room = np.array(size) - margin * 2 - span * scale
    offset = margin - points.min(axis=0) * scale + rng.uniform(0.0, 1.0, 2) * np.maximum(room, 0.0)
    return linear * scale, offset, scale


def _surfaced(rng: np.random.Generator, matrix: np.ndarray, offset: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) mask of the pixels in front of the rippled line where the body goes under the surface."""
    rows, cols = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    frame = (np.stack([cols, rows], axis=-1) - offset) @ np.linalg.inv(matrix).T.astype(np.float32)
    phase = rng.uniform(0.0, 2 * np.pi)
    cut = rng.uniform(*TAIL_CUT) + TAIL_CUT_RIPPLE * np.sin(frame[..., 1] / 0.03 + phase)
    return frame[..., 0] > cut


def render_top_photo(
    ind: Individual, species: Species, rng: np.random.Generator, width_range: tuple[int, int], difficulty: float
) -> Photo:
    """A `top` photo of `ind`; `rng` is the photo's own generator (it decides everything but the animal)."""
    size = photo_size(rng, width_range)
    shapes = top_shapes(ind, species)
    matrix, offset, scale = _top_pose(rng, shapes, size)
    animal_rgb, animal_mask, ridge_mask = draw_animal(shapes, ind, species, matrix, offset, scale, size)
    surfaced = _surfaced(rng, matrix, offset, size)
    visible = animal_mask & surfaced
    body_y = (shapes.body @ matrix.T + offset)[:, 1]
    flank_y = float(body_y.mean() + 0.5 * np.ptp(body_y))  # spray rises from the water along the lower flank
    surface = scene.waterline(rng, size[0], flank_y, difficulty)
    image, quality = composite(rng, animal_rgb, visible, lambda: scene.water(rng, size), surface, difficulty)
    return Photo(image=image, jpeg_quality=quality, fullbody=bbox(visible), backfin=bbox(ridge_mask & surfaced))
