"""Render a `lateral` photo of one animal (the whole animal from the side) and the drawing the photo types share.

The animal's shapes come from `geometry.animal_shapes` (its signature); everything else is drawn
from the photo's own generator. Boxes are read from the drawn masks after the waterline cut, so
they are exact and always inside the image. `fin_photo` and `top_photo` draw the other photo types
with the same `draw_animal`, `photo_size` and `bbox`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from whale_reid.demo import scene
from whale_reid.demo.geometry import AnimalShapes, animal_shapes
from whale_reid.demo.population import Individual
from whale_reid.demo.species import Species

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Photo:
    """A rendered photo: the image, its JPEG quality, and the true (x1, y1, x2, y2) boxes in pixels."""

    image: Image.Image
    jpeg_quality: int
    fullbody: Box
    backfin: Box


def _pose(rng: np.random.Generator, shapes: AnimalShapes, size: tuple[int, int], difficulty: float):
    """A random affine map (2×2 matrix, offset) from the animal frame to pixels that keeps it inside."""
    width, height = size
    flip = -1.0 if rng.random() < 0.5 else 1.0  # left or right side of the animal
    angle = np.deg2rad(np.clip(rng.normal(0.0, 5.0 + 4.0 * difficulty), -14, 14))
    squeeze = rng.uniform(0.8, 1.0)  # mild foreshortening, as when the animal is seen at an angle
    shear = rng.uniform(-0.12, 0.12)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rot @ np.array([[flip * squeeze, shear], [0.0, -1.0]])
    points = np.vstack([shapes.body, shapes.fin]) @ matrix.T
    span = points.max(axis=0) - points.min(axis=0)
    scale = min(width * rng.uniform(0.55, 0.88) / span[0], height * 0.9 / span[1])
    points *= scale
    low, high = points.min(axis=0), points.max(axis=0)
    margin = np.array([width, height]) * 0.03
    room = np.array([width, height]) - margin * 2 - (high - low)
    offset = margin - low + rng.uniform(0.0, 1.0, 2) * np.maximum(room, 0.0)
    return matrix * scale, offset, scale


def _skin(base: tuple[int, int, int], shade: float) -> np.ndarray:
    return np.clip(np.array(base, dtype=np.float32) * shade, 0, 255)


def _mark_color(skin: np.ndarray, delta: float, species: Species) -> tuple[int, ...]:
    """Pigment patch colour: lighter or darker than the skin; species at the dark/light extremes force the sign."""
    luma = float(skin.mean())
    sign = np.sign(delta) if 60 < luma < 180 else species.mark_shade
    target = 255.0 if sign > 0 else 0.0
    return tuple(int(c) for c in skin + abs(delta) * (target - skin))


def draw_animal(shapes: AnimalShapes, ind: Individual, species: Species, matrix, offset, scale, size):
    """Draw the animal's colours and its masks in pixel space; returns (RGB array, body+fin mask, fin mask).

    `matrix` and `offset` map the animal's frame to pixels, `scale` is pixels per body length (scar widths);
    a `belly` of fewer than three points (an animal seen from above) is not drawn.
    """

    def px(points: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in (points @ matrix.T + offset).tolist()]

    back, belly = _skin(species.back_color, ind.shade), _skin(species.belly_color, ind.shade)
    layer = Image.new("RGB", size, tuple(int(c) for c in back))
    draw = ImageDraw.Draw(layer)
    if len(shapes.belly) >= 3:
        draw.polygon(px(shapes.belly), fill=tuple(int(c) for c in belly))
    for polygon, color in shapes.extras[:-1]:
        draw.polygon(px(polygon), fill=color)
    for polygon, delta in shapes.patches:
        draw.polygon(px(polygon), fill=_mark_color(back, delta, species))
    scar_target = 250.0 if species.mark_shade > 0 else 40.0
    scar_color = tuple(int(c) for c in back + 0.7 * (scar_target - back))
    for line, width in shapes.scars:
        draw.line(px(line), fill=scar_color, width=max(1, int(round(width * scale))), joint="curve")
    draw.polygon(px(shapes.extras[-1][0]), fill=shapes.extras[-1][1])
    fin_mask = Image.new("L", size, 0)
    ImageDraw.Draw(fin_mask).polygon(px(shapes.fin), fill=255)
    animal_mask = fin_mask.copy()
    ImageDraw.Draw(animal_mask).polygon(px(shapes.body), fill=255)
    return np.asarray(layer, dtype=np.float32), np.asarray(animal_mask) > 0, np.asarray(fin_mask) > 0


def composite(
    rng: np.random.Generator,
    animal_rgb: np.ndarray,
    visible: np.ndarray,
    background: Callable[[], np.ndarray],
    surface: np.ndarray,
    difficulty: float,
) -> tuple[Image.Image, int]:
    """Sunlight on the animal, its `visible` pixels over the `background`, spray along `surface`, the camera.

    `background` is called after the sunlight is drawn (the order fixes what `rng` gives each step).
    Returns the photo and its JPEG quality.
    """
    size = (visible.shape[1], visible.shape[0])
    alpha = visible.astype(np.float32)[..., None]
    lit = animal_rgb * scene.light_field(rng, size)[..., None]
    rgb = background() * (1.0 - alpha) + lit * alpha
    foam = scene.spray(rng, size, surface, difficulty)[..., None]
    rgb = rgb * (1.0 - foam) + 245.0 * foam
    return scene.finish(rng, rgb, difficulty)


def bbox(mask: np.ndarray) -> Box:
    """The (x1, y1, x2, y2) pixel box of a non-empty mask, x2 and y2 exclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def photo_size(rng: np.random.Generator, width_range: tuple[int, int]) -> tuple[int, int]:
    """A random (width, height): width within `width_range`, aspect ratio (height / width) 0.56–0.8."""
    width = int(rng.integers(width_range[0], width_range[1] + 1))
    return width, int(round(width * rng.uniform(0.56, 0.8)))


def render_photo(
    ind: Individual, species: Species, rng: np.random.Generator, width_range: tuple[int, int], difficulty: float
) -> Photo:
    """A `lateral` photo of `ind`; `rng` is the photo's own generator (it decides everything but the animal)."""
    size = photo_size(rng, width_range)
    shapes = animal_shapes(ind, species)
    matrix, offset, scale = _pose(rng, shapes, size, difficulty)
    animal_rgb, animal_mask, fin_mask = draw_animal(shapes, ind, species, matrix, offset, scale, size)
    body_y = (shapes.body @ matrix.T + offset)[:, 1]
    fin_y = (shapes.fin @ matrix.T + offset)[:, 1]
    body_low, fin_low = float(body_y.max()), float(fin_y.max())
    cut = rng.uniform(0.05, 0.25 + 0.35 * difficulty)
    level = min(body_low - cut * (body_low - float(body_y.min())), body_low)
    level = max(level, fin_low + 0.02 * size[1])  # the water never reaches the fin region
    surface = scene.waterline(rng, size[0], level, difficulty)
    above = np.arange(size[1], dtype=np.float32)[:, None] < np.maximum(surface[None, :], fin_low + 1)
    visible = animal_mask & above
    image, quality = composite(rng, animal_rgb, visible, lambda: scene.water(rng, size), surface, difficulty)
    return Photo(image=image, jpeg_quality=quality, fullbody=bbox(visible), backfin=bbox(fin_mask & above))
