"""An animal's outline and marks as polygons in its own frame (vectorised numpy, no drawing).

Frame: x runs along the body from the tail stock (0) to the snout (1, plus a beak); y points up,
0 is the body's mid-line; one unit is one body length. The renderer maps these points to pixels
with one affine transform per photo, so marks stay attached to the animal under any pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from whale_reid.demo.population import Individual
from whale_reid.demo.species import Species

#: How far the fin region reaches down into the back, in fin heights (a ridge gets a deeper band so
#: the "backfin" crop of a finless species shows the marked skin around the ridge).
FIN_ROOT = 0.25
RIDGE_ROOT = 1.2
#: Maximum of (x + 0.05)^0.9 (1 - x)^0.4, reached at x = 0.677 (so the body is `body_height` deep there).
_BUMP_MAX = 0.727**0.9 * 0.323**0.4
_BODY_X = np.linspace(0.0, 1.0, 90)
_EDGE_H = np.linspace(0.0, 1.0, 160)


@dataclass(frozen=True)
class AnimalShapes:
    """Polygons (n×2 arrays) and polylines of one animal in its own frame.

    Attributes:
        body: the body outline with flukes and beak.
        belly: the lower, countershaded part of the body.
        fin: the dorsal fin (or ridge) including its root band in the back.
        patches: (polygon, shade delta) pairs, body and fin patches together.
        scars: (polyline, width in body lengths) pairs.
        extras: (polygon, RGB colour) of species features (saddle, eye patch, eye).
    """

    body: np.ndarray
    belly: np.ndarray
    fin: np.ndarray
    patches: list[tuple[np.ndarray, float]]
    scars: list[tuple[np.ndarray, float]]
    extras: list[tuple[np.ndarray, tuple[int, int, int]]]


def body_profile(x: np.ndarray, species: Species) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom y of the body at positions `x` (a spindle, thickest ~60% towards the snout)."""
    bump = np.clip(x + 0.05, 0.0, None) ** 0.9 * np.clip(1.0 - x, 0.0, None) ** 0.4 / _BUMP_MAX
    return 0.55 * species.body_height * bump, -0.45 * species.body_height * bump


def ellipse(center: np.ndarray, radii: tuple[float, float], angle_rad: float, n: int = 28) -> np.ndarray:
    """Points of a rotated ellipse."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    pts = np.column_stack([radii[0] * np.cos(t), radii[1] * np.sin(t)])
    rot = np.array([[np.cos(angle_rad), -np.sin(angle_rad)], [np.sin(angle_rad), np.cos(angle_rad)]])
    return pts @ rot.T + center


def scar_line(center: np.ndarray, angle_rad: float, length: float, bend: float) -> np.ndarray:
    """A scar as a 9-point polyline: `length` long through `center` at `angle_rad`, bowed by `bend` lengths."""
    s = np.linspace(-0.5, 0.5, 9)[:, None]
    direction = np.array([np.cos(angle_rad), np.sin(angle_rad)])
    normal = np.array([-direction[1], direction[0]])
    return center + s * length * direction + bend * length * (s**2 - 0.25) * normal


def fin_outline(ind: Individual, species: Species) -> np.ndarray:
    """Fin outline in fin units: a = 0 leading base … 1 trailing base (towards the tail), h = height."""
    _, sweep_delta, falcate_delta, _, tip_round, tip_cut = ind.fin_shape
    tip_a = 0.35 + max(species.fin_sweep + sweep_delta, 0.0)
    falcate = max(species.fin_falcate + falcate_delta, 0.0)
    h = _EDGE_H
    leading_a = tip_a * h ** (1.3 + 1.2 * tip_round)
    trailing_a = tip_a + (1.0 - tip_a) * (1.0 - h) - 0.3 * falcate * np.sin(np.pi * h)
    height, base = fin_size(ind, species)
    for pos, depth, width in ind.nicks:
        notch = np.clip(1.0 - np.abs(h - pos) / (width / 2), 0.0, None)
        trailing_a = trailing_a - depth * (height / base) * notch
    trailing_a = np.maximum(trailing_a, leading_a + 0.02)
    top = 1.0 - tip_cut
    leading = np.column_stack([leading_a, np.minimum(h, top)])
    trailing = np.column_stack([trailing_a, np.minimum(h, top)])[::-1]
    root = -(FIN_ROOT if species.has_dorsal_fin else RIDGE_ROOT)
    return np.vstack([[[0.0, root]], leading, trailing, [[1.0, root]]])


def fin_size(ind: Individual, species: Species) -> tuple[float, float]:
    """The fin's (height, base length) in body lengths for this animal."""
    return species.fin_height * ind.fin_shape[0], species.fin_base * ind.fin_shape[3]


def fin_to_body(points: np.ndarray, ind: Individual, species: Species) -> np.ndarray:
    """Map fin units (a along the base, h up) onto the animal frame, riding on the curved back."""
    height, base = fin_size(ind, species)
    x = species.fin_position - points[:, 0] * base
    top, _ = body_profile(np.clip(x, 0.0, 1.0), species)
    return np.column_stack([x, top + points[:, 1] * height])


def _body_outline(species: Species) -> tuple[np.ndarray, np.ndarray]:
    top, bottom = body_profile(_BODY_X, species)
    upper = np.column_stack([_BODY_X, top])
    lower = np.column_stack([_BODY_X, bottom])[::-1]
    tail_y = 0.5 * (top[0] + bottom[0])
    flukes = np.array([[-0.08, tail_y + 0.07], [-0.05, tail_y], [-0.08, tail_y - 0.05]])
    nose_y = 0.5 * (top[-1] + bottom[-1])
    beak = np.array([[1.0, nose_y + 0.02], [1.0 + species.beak_length, nose_y], [1.0, nose_y - 0.015]])
    body = np.vstack([flukes[:2], upper, beak[1:2], lower, flukes[2:]])
    belly_line = bottom + 0.35 * (top - bottom)
    belly = np.vstack([np.column_stack([_BODY_X, belly_line]), lower])
    return body, belly


def _marks(ind: Individual, species: Species) -> tuple[list, list]:
    top, bottom = body_profile(ind.body_patches[:, 0], species)
    patches = []
    for (u, v, ru, rv, angle, shade), t, b in zip(ind.body_patches, top, bottom):
        patches.append((ellipse(np.array([u, b + v * (t - b)]), (ru, rv), angle), shade))
    height, base = fin_size(ind, species)
    unit = float(np.sqrt(height * base))
    for u, v, ru, rv, angle, shade in ind.fin_patches:
        center = fin_to_body(np.array([[u, v]]), ind, species)[0]
        patches.append((ellipse(center, (ru * unit, rv * unit), angle), shade))
    scars = []
    for table, is_fin in ((ind.body_scars, False), (ind.fin_scars, True)):
        for u, v, angle, length, bend, width in table:
            if is_fin:
                center = fin_to_body(np.array([[u, v]]), ind, species)[0]
                length, width = length * unit, width * unit
            else:
                t, b = body_profile(np.array([u]), species)
                center = np.array([u, b[0] + v * (t[0] - b[0])])
            scars.append((scar_line(center, angle, length, bend), float(width)))
    return patches, scars


def animal_shapes(ind: Individual, species: Species) -> AnimalShapes:
    """Everything the renderer draws for `ind`, in the animal's frame."""
    body, belly = _body_outline(species)
    fin = fin_to_body(fin_outline(ind, species), ind, species)
    patches, scars = _marks(ind, species)
    extras: list[tuple[np.ndarray, tuple[int, int, int]]] = []
    top, bottom = body_profile(np.array([0.86, species.fin_position - 0.12]), species)
    if species.saddle:
        saddle_y = bottom[1] + 0.85 * (top[1] - bottom[1])
        extras.append((ellipse(np.array([species.fin_position - 0.12, saddle_y]), (0.1, 0.04), 0.1), (150, 150, 155)))
        eye_y = bottom[0] + 0.6 * (top[0] - bottom[0])
        extras.append((ellipse(np.array([0.84, eye_y]), (0.06, 0.022), 0.15), (240, 240, 240)))
    eye_y = bottom[0] + 0.45 * (top[0] - bottom[0])
    extras.append((ellipse(np.array([0.93, eye_y]), (0.008, 0.006), 0.0, n=10), (12, 12, 14)))
    return AnimalShapes(body=body, belly=belly, fin=fin, patches=patches, scars=scars, extras=extras)
