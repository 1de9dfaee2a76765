"""Render a `fin` photo: the dorsal fin above water, close up, over a strip of back, against sea (and sometimes sky).

Most competition photos are of this kind: the photographer frames the fin, the rest of the animal is below
the waterline or out of the frame, and the fin's trailing edge (its nicks), scars and patches tell the animal
apart. The animal is drawn from the same shapes as a `lateral` photo (`geometry.animal_shapes`), only posed
close up; side, roll, scale, placement, water, sky, waves, spray, light and blur come from the photo's own
generator. Boxes are read from the drawn masks after the waterline cut, as for every photo.
"""

from __future__ import annotations

import numpy as np

from whale_reid.demo import scene
from whale_reid.demo.geometry import AnimalShapes, animal_shapes, fin_to_body
from whale_reid.demo.population import Individual
from whale_reid.demo.render import Photo, bbox, composite, draw_animal, photo_size
from whale_reid.demo.species import Species

#: The fin box is framed to this share of the photo's height (waves then move its lower edge a little).
FIN_BOX_SHARE = (0.33, 0.58)
#: A fin with a long base is framed by its width instead: at most this share of the photo's width.
MAX_FIN_WIDTH_SHARE = 0.8
#: Depth of the still waterline below the middle of the fin's base, in fin heights: usually a strip of back
#: shows; with probability `WASHED_BASE_P` the water is at the base and may hide a little of it. Wave crests
#: never rise more than `MAX_WASH` fin heights above the base line.
WATERLINE_DEPTH = (0.08, 0.6)
WASHED_BASE_DEPTH = (-0.05, 0.04)
WASHED_BASE_P = 0.15
MAX_WASH = 0.05
#: The animal's roll in the photo, at most this many degrees either way.
MAX_ROLL_DEG = 10.0
#: Chance of a band of sky above a horizon, which stays this share of the height above the waterline.
SKY_P = 0.35
SKY_CLEARANCE = 0.15


def _fin_pose(
    rng: np.random.Generator, shapes: AnimalShapes, ind: Individual, species: Species, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A close-up affine map (2×2 matrix, offset) of the animal frame to pixels, its scale and the waterline's y.

    The fin box (fin tip down to the waterline or the fin region's lower edge) is framed to a random share
    of the height and placed at random inside a 5 % margin.
    """
    width, height = size
    flip = -1.0 if rng.random() < 0.5 else 1.0  # left or right side of the animal
    roll = np.deg2rad(np.clip(rng.normal(0.0, 5.0), -MAX_ROLL_DEG, MAX_ROLL_DEG))
    squeeze = rng.uniform(0.85, 1.0)  # mild foreshortening of the fin's base
    rot = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    linear = rot @ np.array([[flip * squeeze, 0.0], [0.0, -1.0]])
    washed = rng.random() < WASHED_BASE_P
    depth = rng.uniform(*(WASHED_BASE_DEPTH if washed else WATERLINE_DEPTH))
    fin = shapes.fin @ linear.T
    water_y = float((fin_to_body(np.array([[0.5, -depth]]), ind, species) @ linear.T)[0, 1])
    top, bottom = float(fin[:, 1].min()), min(float(fin[:, 1].max()), water_y)
    left, span_x = float(fin[:, 0].min()), float(np.ptp(fin[:, 0]))
    share = rng.uniform(*FIN_BOX_SHARE)
    scale = min(height * share / (bottom - top), width * MAX_FIN_WIDTH_SHARE / span_x)
    room = np.array([width - span_x * scale, height - (bottom - top) * scale]) - 0.1 * np.array(size)
    corner = 0.05 * np.array(size) + rng.uniform(0.0, 1.0, 2) * np.maximum(room, 0.0)
    offset = corner - np.array([left, top]) * scale
    return linear * scale, offset, scale, water_y * scale + float(offset[1])


def _crest_limit(
    ind: Individual, species: Species, matrix: np.ndarray, offset: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Per column, the highest y (smallest) the water may reach: `MAX_WASH` above the fin's base, else anywhere."""
    base = np.column_stack([np.linspace(0.0, 1.0, 32), np.full(32, MAX_WASH)])
    line = fin_to_body(base, ind, species) @ matrix.T + offset
    line = line[np.argsort(line[:, 0])]
    columns = np.arange(size[0], dtype=np.float64)
    limit = np.interp(columns, line[:, 0], line[:, 1])
    return np.where((columns >= line[0, 0]) & (columns <= line[-1, 0]), limit, -np.inf).astype(np.float32)


def _background(rng: np.random.Generator, size: tuple[int, int], waterline_y: float) -> np.ndarray:
    """The sea, with a band of sky above a horizon in some photos (only where it fits above the waterline)."""
    sea = scene.water(rng, size)
    has_sky = rng.random() < SKY_P
    highest = waterline_y - SKY_CLEARANCE * size[1]
    if not has_sky or highest < 0.08 * size[1]:
        return sea
    return scene.with_sky(rng, sea, rng.uniform(0.04 * size[1], highest))


def render_fin_photo(
    ind: Individual, species: Species, rng: np.random.Generator, width_range: tuple[int, int], difficulty: float
) -> Photo:
    """A `fin` photo of `ind` (a species with a dorsal fin); `rng` is the photo's own generator.

    Boxes: `backfin` is the fin region above the water, `fullbody` the fin with the strip of back above it.
    """
    size = photo_size(rng, width_range)
    shapes = animal_shapes(ind, species)
    matrix, offset, scale, waterline_y = _fin_pose(rng, shapes, ind, species, size)
    animal_rgb, animal_mask, fin_mask = draw_animal(shapes, ind, species, matrix, offset, scale, size)
    surface = np.maximum(
        scene.waterline(rng, size[0], waterline_y, difficulty), _crest_limit(ind, species, matrix, offset, size)
    )
    above = np.arange(size[1], dtype=np.float32)[:, None] < surface[None, :]
    visible = animal_mask & above
    image, quality = composite(
        rng, animal_rgb, visible, lambda: _background(rng, size, waterline_y), surface, difficulty
    )
    return Photo(image=image, jpeg_quality=quality, fullbody=bbox(visible), backfin=bbox(fin_mask & above))
