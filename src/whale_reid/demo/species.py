"""The species the demo can render: Kaggle names, body and fin shapes, colours, label typos.

Lengths are in body lengths (the animal is 1.0 long in its own frame); colours are RGB 0–255.
Species differ visibly (that is allowed: species is visible in a photo); individuals of one
species differ only by their marks and fin silhouette (see `population.Individual`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Species:
    """The look shared by every animal of one species.

    Attributes:
        name: the Kaggle `species` label.
        typo: a misspelling Kaggle's train.csv really uses for this species (or None).
        body_height: body depth at its thickest, in body lengths.
        beak_length: rostrum length in body lengths (0 for blunt-headed species).
        back_color: dorsal skin colour.
        belly_color: ventral (countershading) colour.
        mark_shade: +1 when scars/patches are lighter than the skin, -1 when darker.
        fin_position: where the fin's leading base sits, 0 = tail, 1 = snout.
        fin_height: dorsal fin height in body lengths (a low ridge for species without a fin).
        fin_base: fin base length in body lengths.
        fin_sweep: how far back the tip leans, in fin heights.
        fin_falcate: concavity of the trailing edge, 0 = straight (triangular) … 1 = strongly hooked.
        has_dorsal_fin: False for species with only a dorsal ridge (beluga): the ridge is the "backfin".
        saddle: draw a killer-whale-style pale saddle behind the fin and an eye patch.
    """

    name: str
    typo: str | None
    body_height: float
    beak_length: float
    back_color: tuple[int, int, int]
    belly_color: tuple[int, int, int]
    mark_shade: int
    fin_position: float
    fin_height: float
    fin_base: float
    fin_sweep: float
    fin_falcate: float
    has_dorsal_fin: bool = True
    saddle: bool = False


#: Catalogue order matters: `DemoConfig.n_species = k` uses the first k. The first three carry
#: all four of Kaggle's label typos, so even the tiny profile exercises the prepare stage's fixes.
CATALOGUE: tuple[Species, ...] = (
    Species(
        "bottlenose_dolphin",
        "bottlenose_dolpin",
        0.21,
        0.07,
        (112, 120, 130),
        (200, 204, 210),
        1,
        0.50,
        0.15,
        0.17,
        0.55,
        0.6,
    ),
    Species(
        "killer_whale",
        "kiler_whale",
        0.26,
        0.0,
        (22, 22, 26),
        (235, 235, 235),
        1,
        0.50,
        0.24,
        0.15,
        0.25,
        0.25,
        saddle=True,
    ),
    Species(
        "short_finned_pilot_whale",
        "globis",
        0.23,
        0.0,
        (38, 40, 46),
        (70, 72, 78),
        1,
        0.58,
        0.11,
        0.24,
        0.55,
        0.7,
    ),
    Species(
        "beluga",
        None,
        0.25,
        0.0,
        (226, 226, 218),
        (236, 236, 230),
        -1,
        0.42,
        0.035,
        0.28,
        0.2,
        0.0,
        has_dorsal_fin=False,
    ),
    Species(
        "humpback_whale",
        None,
        0.2,
        0.0,
        (48, 52, 60),
        (160, 165, 172),
        1,
        0.30,
        0.06,
        0.12,
        0.5,
        0.4,
    ),
    Species(
        "blue_whale",
        None,
        0.15,
        0.0,
        (92, 110, 132),
        (130, 145, 160),
        1,
        0.22,
        0.035,
        0.07,
        0.6,
        0.5,
    ),
    Species(
        "false_killer_whale",
        None,
        0.2,
        0.0,
        (30, 32, 36),
        (48, 50, 56),
        1,
        0.52,
        0.13,
        0.15,
        0.7,
        0.8,
    ),
    Species(
        "spinner_dolphin",
        None,
        0.18,
        0.1,
        (88, 92, 104),
        (215, 210, 200),
        1,
        0.50,
        0.14,
        0.14,
        0.2,
        0.1,
    ),
)

#: A second misspelling of the pilot whale that Kaggle's train.csv also uses.
EXTRA_TYPOS: dict[str, str] = {"short_finned_pilot_whale": "pilot_whale"}


def canonical_name(label: str) -> str:
    """The catalogue name for a species label, undoing the demo's Kaggle typos (unknown labels unchanged)."""
    for species in CATALOGUE:
        if label in typos_of(species):
            return species.name
    return label


def typos_of(species: Species) -> tuple[str, ...]:
    """All misspellings of `species` used in the demo's train.csv (sorted, possibly empty)."""
    names = [species.typo] if species.typo else []
    if species.name in EXTRA_TYPOS:
        names.append(EXTRA_TYPOS[species.name])
    return tuple(sorted(names))
