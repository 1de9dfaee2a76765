"""An animal seen from above, as polygons in its own frame: the `top` photo of a species without a dorsal fin.

Frame: x runs along the body from the tail stock (0) to the snout (1), as in `geometry`; y runs across
the back, 0 on the spine. The side view's marks are carried over the back: a mark `v` of the way from
belly to back in the side view lies `(1 - v) * BREADTH_REACH` of the half-breadth from the spine, on both
flanks (a side photo shows either flank with the same marks). The dorsal ridge becomes a narrow band along
the spine whose outline is the ridge's profile, nicks included; the "backfin" region around it is the side
view's ridge region laid flat on both sides of the spine.
"""

from __future__ import annotations

import numpy as np

from whale_reid.demo.geometry import RIDGE_ROOT, AnimalShapes, body_profile, ellipse, fin_outline, fin_size, scar_line
from whale_reid.demo.population import Individual
from whale_reid.demo.species import Species

#: Body breadth over body depth (the animals seen from above are about as broad as they are deep).
BREADTH = 1.0
#: How far across the back (in half-breadths) the side view's lowest marks land; the back's marks sit near the spine.
BREADTH_REACH = 1.15
#: Half-width of the ridge band per unit of ridge height (the ridge is seen edge-on, foreshortened).
RIDGE_SPREAD = 0.6
#: Tail flukes from above, the y > 0 half: (x in body lengths, y in the body's greatest half-breadth) from the
#: tail stock out to the fluke tip and back to the notch.
FLUKE = np.array([[-0.05, 0.8], [-0.1, 1.05], [-0.12, 0.8], [-0.085, 0.0]])
SIDES = (1.0, -1.0)
_BODY_X = np.linspace(0.0, 1.0, 90)


def half_breadth(x: np.ndarray, species: Species) -> np.ndarray:
    """Half the body's breadth at positions `x`, seen from above."""
    top, bottom = body_profile(x, species)
    return 0.5 * BREADTH * (top - bottom)


def _outline(species: Species) -> np.ndarray:
    half = half_breadth(_BODY_X, species)
    upper = np.column_stack([_BODY_X, half])[::-1]  # snout → tail stock along the y > 0 flank
    lower = np.column_stack([_BODY_X, -half])  # tail stock → snout along the y < 0 flank
    fluke_upper = FLUKE * [1.0, half.max()]
    fluke_lower = (fluke_upper * [1.0, -1.0])[::-1]
    snout = np.array([[1.0 + species.beak_length, 0.0]])
    return np.vstack([snout, upper, fluke_upper, fluke_lower, lower])


def _across(u: float, v: float, side: float, species: Species) -> np.ndarray:
    """The top-view point of a side-view mark at `u` along the body, `v` of the way from belly to back."""
    return np.array([u, side * (1.0 - v) * BREADTH_REACH * float(half_breadth(np.array([u]), species)[0])])


def ridge_to_top(points: np.ndarray, ind: Individual, species: Species, side: float, lift: float) -> np.ndarray:
    """Map ridge points in fin units (a along the base, h up) to the top view, `(h + lift)` ridge heights out."""
    height, base = fin_size(ind, species)
    across = side * (np.maximum(points[:, 1], 0.0) + lift) * height * RIDGE_SPREAD
    return np.column_stack([species.fin_position - points[:, 0] * base, across])


def _band(edge: np.ndarray, ind: Individual, species: Species, lift: float) -> np.ndarray:
    """A closed band along the spine: the ridge's edge on one side of the spine, mirrored on the other."""
    return np.vstack([ridge_to_top(edge, ind, species, 1.0, lift), ridge_to_top(edge[::-1], ind, species, -1.0, lift)])


def _marks(ind: Individual, species: Species) -> tuple[list, list]:
    height, base = fin_size(ind, species)
    unit = float(np.sqrt(height * base))
    patches, scars = [], []
    for side in SIDES:
        for u, v, ru, rv, angle, shade in ind.body_patches:
            patches.append((ellipse(_across(u, v, side, species), (ru, rv), side * angle), shade))
        for u, v, ru, rv, angle, shade in ind.fin_patches:
            center = ridge_to_top(np.array([[u, v]]), ind, species, side, RIDGE_ROOT / 2)[0]
            patches.append((ellipse(center, (ru * unit, rv * unit), side * angle), shade))
        for u, v, angle, length, bend, width in ind.body_scars:
            scars.append((scar_line(_across(u, v, side, species), side * angle, length, side * bend), float(width)))
        for u, v, angle, length, bend, width in ind.fin_scars:
            center = ridge_to_top(np.array([[u, v]]), ind, species, side, RIDGE_ROOT / 2)[0]
            scars.append((scar_line(center, side * angle, length * unit, side * bend), float(width * unit)))
    return patches, scars


def top_shapes(ind: Individual, species: Species) -> AnimalShapes:
    """Everything the renderer draws for `ind` seen from above, in the animal's frame.

    `fin` is the ridge region (the "backfin" box); `belly` is empty (not seen from above); `extras` are the
    ridge band, a shade darker than the skin, and the blowhole.
    """
    edge = fin_outline(ind, species)[1:-1]  # leading base → tip → trailing base, without the root corners
    skin = np.clip(np.array(species.back_color, dtype=np.float32) * ind.shade, 0, 255)
    ridge_color = tuple(int(c) for c in skin * 0.82)
    blowhole = ellipse(np.array([0.9, 0.0]), (0.01, 0.018), 0.0, n=12)
    patches, scars = _marks(ind, species)
    return AnimalShapes(
        body=_outline(species),
        belly=np.zeros((0, 2)),
        fin=_band(edge, ind, species, RIDGE_ROOT),
        patches=patches,
        scars=scars,
        extras=[(_band(edge, ind, species, 0.0), ridge_color), (blowhole, (40, 40, 44))],
    )
