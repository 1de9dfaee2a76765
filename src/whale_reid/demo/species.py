"""The species the demo can render: Kaggle names, body and fin shapes, colours, label typos.

Lengths are in body lengths (the animal is 1.0 long in its own frame); colours are RGB 0–255.
Species differ visibly (that is allowed: species is visible in a photo); individuals of one
species differ only by their marks and fin silhouette (see `population.Individual`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
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
        name="bottlenose_dolphin",
        typo="bottlenose_dolpin",
        body_height=0.21,
        beak_length=0.07,
        back_color=(112, 120, 130),
        belly_color=(200, 204, 210),
        mark_shade=1,
        fin_position=0.5,
        fin_height=0.15,
        fin_base=0.17,
        fin_sweep=0.55,
        fin_falcate=0.6,
    ),
    Species(
        name="killer_whale",
        typo="kiler_whale",
        body_height=0.26,
        beak_length=0.0,
        back_color=(22, 22, 26),
        belly_color=(235, 235, 235),
        mark_shade=1,
        fin_position=0.5,
        fin_height=0.24,
        fin_base=0.15,
        fin_sweep=0.25,
        fin_falcate=0.25,
        saddle=True,
    ),
    Species(
        name="short_finned_pilot_whale",
        typo="globis",
        body_height=0.23,
        beak_length=0.0,
        back_color=(38, 40, 46),
        belly_color=(70, 72, 78),
        mark_shade=1,
        fin_position=0.58,
        fin_height=0.11,
        fin_base=0.24,
        fin_sweep=0.55,
        fin_falcate=0.7,
    ),
    Species(
        name="beluga",
        typo=None,
        body_height=0.25,
        beak_length=0.0,
        back_color=(226, 226, 218),
        belly_color=(236, 236, 230),
        mark_shade=-1,
        fin_position=0.42,
        fin_height=0.035,
        fin_base=0.28,
        fin_sweep=0.2,
        fin_falcate=0.0,
        has_dorsal_fin=False,
    ),
    Species(
        name="humpback_whale",
        typo=None,
        body_height=0.2,
        beak_length=0.0,
        back_color=(48, 52, 60),
        belly_color=(160, 165, 172),
        mark_shade=1,
        fin_position=0.3,
        fin_height=0.06,
        fin_base=0.12,
        fin_sweep=0.5,
        fin_falcate=0.4,
    ),
    Species(
        name="blue_whale",
        typo=None,
        body_height=0.15,
        beak_length=0.0,
        back_color=(92, 110, 132),
        belly_color=(130, 145, 160),
        mark_shade=1,
        fin_position=0.22,
        fin_height=0.035,
        fin_base=0.07,
        fin_sweep=0.6,
        fin_falcate=0.5,
    ),
    Species(
        name="false_killer_whale",
        typo=None,
        body_height=0.2,
        beak_length=0.0,
        back_color=(30, 32, 36),
        belly_color=(48, 50, 56),
        mark_shade=1,
        fin_position=0.52,
        fin_height=0.13,
        fin_base=0.15,
        fin_sweep=0.7,
        fin_falcate=0.8,
    ),
    Species(
        name="spinner_dolphin",
        typo=None,
        body_height=0.18,
        beak_length=0.1,
        back_color=(88, 92, 104),
        belly_color=(215, 210, 200),
        mark_shade=1,
        fin_position=0.5,
        fin_height=0.14,
        fin_base=0.14,
        fin_sweep=0.2,
        fin_falcate=0.1,
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
