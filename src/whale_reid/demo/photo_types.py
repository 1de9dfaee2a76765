"""Which kind of photo each demo photo is (`lateral`, `fin`, `top`), and the renderer of each kind.

A type is drawn per photo from `DemoConfig.photo_types` with a generator of its own (`[seed, 3, photo]`),
so the photo's generator (`[seed, 1, photo]`) and the population's are consumed exactly as before photo
types existed, and a `{lateral: 1}` mix renders the same bytes as the renderer before them. Each species
draws among the types it can have: an animal without a dorsal fin is never photographed fin first (its
`fin` share goes to `top`), and `top` is the photo of such an animal only (a fin species draws among
`fin` and `lateral`, in their proportion).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from whale_reid.demo.config import PHOTO_TYPES
from whale_reid.demo.fin_photo import render_fin_photo
from whale_reid.demo.population import Individual
from whale_reid.demo.render import Photo, render_photo
from whale_reid.demo.species import Species
from whale_reid.demo.top_photo import render_top_photo

Renderer = Callable[[Individual, Species, np.random.Generator, tuple[int, int], float], Photo]
RENDERERS: dict[str, Renderer] = {"lateral": render_photo, "fin": render_fin_photo, "top": render_top_photo}


def species_shares(shares: dict[str, float], species: Species) -> dict[str, float]:
    """The mix as `species` can be photographed, as shares that sum to 1.

    A fin species drops `top` (the rest renormalised); a finless one takes `fin`'s share as `top`.
    A fin species under a `top`-only mix gets `lateral` photos.
    """
    own = {name: shares.get(name, 0.0) for name in PHOTO_TYPES}
    if species.has_dorsal_fin:
        own["top"] = 0.0
    else:
        own["top"], own["fin"] = own["top"] + own["fin"], 0.0
    total = sum(own.values())
    return {name: weight / total for name, weight in own.items()} if total > 0 else {"lateral": 1.0}


def draw_photo_type(shares: dict[str, float], rng: np.random.Generator, species: Species) -> str:
    """One photo's type, drawn from `shares` (`DemoConfig.photo_type_weights()`) as `species` can have them.

    A species left with a single type uses no randomness.
    """
    own = species_shares(shares, species)
    names = [name for name, share in own.items() if share > 0]
    if len(names) == 1:
        return names[0]
    return str(rng.choice(names, p=[own[name] for name in names]))


def render_typed_photo(
    photo_type: str,
    ind: Individual,
    species: Species,
    rng: np.random.Generator,
    width_range: tuple[int, int],
    difficulty: float,
) -> Photo:
    """A photo of `ind` of the given type; `rng` is the photo's own generator."""
    return RENDERERS[photo_type](ind, species, rng, width_range, difficulty)
