"""The synthetic population: each animal's persistent signature and the plan of who is photographed when.

An `Individual` holds everything that identifies one animal (fin silhouette, trailing-edge nicks,
scars, pigment patches); the renderer varies only the photo conditions around it. `plan_photos`
decides how many photos each animal gets (a long tail), which are held out as test, and which
animals are never seen in train (the `new_individual` ones). Everything is drawn from one
`numpy.random.Generator`, so a seed fixes the population.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from whale_reid.demo.config import DemoConfig
from whale_reid.demo.species import CATALOGUE

#: Kaggle-style name lengths in hex characters.
IMAGE_NAME_HEX, INDIVIDUAL_ID_HEX = 14, 12


@dataclass(frozen=True, eq=False)
class Individual:
    """One animal's persistent signature; arrays are small tables of marks in the animal's frame.

    Attributes:
        individual_id: 12 hex characters, Kaggle style.
        species_index: index into `species.CATALOGUE`.
        shade: multiplier of the species' skin colour (0.85–1.15).
        fin_shape: (height scale, sweep change, falcate change, base scale, tip roundness, tip cut).
        nicks: rows of (position along trailing edge 0=base…1=tip, depth and width in fin heights).
        body_patches: rows of (u along body, v across body 0=belly…1=back, radius u, radius v,
            angle rad, shade delta) — pigment patches on the flank.
        fin_patches: the same for the fin, with u/v = fraction of fin base / fin height.
        body_scars: rows of (u, v, angle rad, length, bend, width) in body lengths; light lines.
        fin_scars: the same on the fin, u/v/length in fin units.
    """

    individual_id: str
    species_index: int
    shade: float
    fin_shape: np.ndarray
    nicks: np.ndarray
    body_patches: np.ndarray
    fin_patches: np.ndarray
    body_scars: np.ndarray
    fin_scars: np.ndarray


def unique_hex(rng: np.random.Generator, n: int, n_chars: int, taken: set[str] | None = None) -> list[str]:
    """`n` distinct random lowercase hex strings of `n_chars` characters (none of them in `taken`)."""
    taken = set() if taken is None else taken
    names: list[str] = []
    while len(names) < n:
        value = "".join(f"{b:02x}" for b in rng.integers(0, 256, size=(n_chars + 1) // 2))[:n_chars]
        if value not in taken:
            taken.add(value)
            names.append(value)
    return names


def _patches(rng: np.random.Generator, n: int, radius: tuple[float, float], v_range: tuple[float, float]) -> np.ndarray:
    shade = rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.3, 0.55, size=n)
    return np.column_stack(
        [
            rng.uniform(0.12, 0.88, n),
            rng.uniform(*v_range, n),
            rng.uniform(*radius, n),
            rng.uniform(*radius, n) * 0.7,
            rng.uniform(0.0, np.pi, n),
            shade,
        ]
    )


def _scars(rng: np.random.Generator, n: int, length: tuple[float, float], width: tuple[float, float]) -> np.ndarray:
    return np.column_stack(
        [
            rng.uniform(0.15, 0.85, n),
            rng.uniform(0.35, 0.85, n),
            rng.uniform(-np.pi / 2, np.pi / 2, n),
            rng.uniform(*length, n),
            rng.uniform(-0.3, 0.3, n),
            rng.uniform(*width, n),
        ]
    )


def _nicks(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` V-notches of the trailing edge: (position 0.1–0.85, depth 7–20 %, width 6–14 % of the fin height)."""
    return np.column_stack([np.sort(rng.uniform(0.1, 0.85, n)), rng.uniform(0.07, 0.2, n), rng.uniform(0.06, 0.14, n)])


def with_a_nick(ind: Individual, rng: np.random.Generator) -> Individual:
    """`ind` itself if its fin has a nick, else a copy with one nick drawn from `rng` (the animal's own stream).

    The trailing edge's nicks are what tells fin animals apart in a close-up of the fin, so a population
    photographed fin first gives every fin animal at least one.
    """
    if len(ind.nicks):
        return ind
    return dataclasses.replace(ind, nicks=_nicks(rng, 1))


def make_individual(rng: np.random.Generator, individual_id: str, species_index: int) -> Individual:
    """Draw one animal's signature; marks are sized to stay legible in a 128 px crop."""
    tip_cut = rng.uniform(0.08, 0.2) if rng.random() < 0.2 else 0.0
    fin_shape = np.array(
        [
            rng.uniform(0.75, 1.25),
            rng.uniform(-0.3, 0.3),
            rng.uniform(-0.35, 0.35),
            rng.uniform(0.8, 1.2),
            rng.uniform(0.0, 1.0),
            tip_cut,
        ]
    )
    n_nicks = int(rng.choice([0, 1, 2, 3, 4], p=[0.1, 0.25, 0.3, 0.2, 0.15]))
    nicks = _nicks(rng, n_nicks)
    return Individual(
        individual_id=individual_id,
        species_index=species_index,
        shade=float(rng.uniform(0.85, 1.15)),
        fin_shape=fin_shape,
        nicks=nicks,
        body_patches=_patches(rng, int(rng.integers(1, 5)), (0.03, 0.065), (0.3, 0.9)),
        fin_patches=_patches(rng, int(rng.integers(0, 3)), (0.12, 0.28), (0.15, 0.7)),
        body_scars=_scars(rng, int(rng.integers(1, 4)), (0.08, 0.25), (0.008, 0.014)),
        fin_scars=_scars(rng, int(rng.integers(0, 3)), (0.3, 0.7), (0.03, 0.06)),
    )


def make_population(cfg: DemoConfig, rng: np.random.Generator) -> list[Individual]:
    """All `cfg.n_individuals` animals; every species gets at least two, the rest follow uneven shares.

    When `cfg` draws fin photos, a fin animal born without a nick gets one from its own stream
    (`[seed, 2, animal]`), so `rng` is consumed exactly as by a lateral-only population.
    """
    weights = 1.0 / np.sqrt(np.arange(1, cfg.n_species + 1))
    extra = rng.choice(cfg.n_species, size=cfg.n_individuals - 2 * cfg.n_species, p=weights / weights.sum())
    species = rng.permutation(np.concatenate([np.repeat(np.arange(cfg.n_species), 2), extra]))
    ids = unique_hex(rng, cfg.n_individuals, INDIVIDUAL_ID_HEX)
    population = [make_individual(rng, ids[i], int(species[i])) for i in range(cfg.n_individuals)]
    if not cfg.draws_fin_photos:  # the population exactly as before photo types: some fins without a nick
        return population
    return [
        with_a_nick(ind, np.random.default_rng([cfg.seed, 2, i]))
        if CATALOGUE[ind.species_index].has_dorsal_fin
        else ind
        for i, ind in enumerate(population)
    ]


def _photo_counts(cfg: DemoConfig, rng: np.random.Generator) -> np.ndarray:
    n_single = int(round(cfg.singleton_fraction * cfg.n_individuals))
    single = rng.choice([1, 2], size=n_single, p=[0.6, 0.4])
    low = min(3, cfg.max_photos_per_individual)
    p_stop = min(1.0, 1.0 / max(cfg.mean_photos_per_individual - low + 1, 1.0))
    many = np.minimum(low - 1 + rng.geometric(p_stop, size=cfg.n_individuals - n_single), cfg.max_photos_per_individual)
    return rng.permutation(np.concatenate([single, many])).astype(int)


def plan_photos(cfg: DemoConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Who is photographed how often, and which photos are test.

    Returns:
        One row per photo, in random order: `individual` (index into the population), `split`
        ("train" / "test") and `is_new` (the animal has no train photo).
    """
    counts = _photo_counts(cfg, rng)
    n_test = int(round(cfg.test_fraction * counts.sum()))
    n_new_target = int(round(cfg.new_individual_fraction * n_test))
    is_new = np.zeros(cfg.n_individuals, dtype=bool)
    n_new = 0
    for index in rng.permutation(cfg.n_individuals):
        if n_new + counts[index] <= n_new_target:
            is_new[index] = True
            n_new += counts[index]
    owner = np.repeat(np.arange(cfg.n_individuals), counts)
    first_photo = np.r_[True, owner[1:] != owner[:-1]]
    split = np.where(is_new[owner], "test", "train").astype(object)
    candidates = np.flatnonzero(~is_new[owner] & ~first_photo)
    n_known = min(max(n_test - n_new, 0), candidates.size)
    split[rng.choice(candidates, size=n_known, replace=False)] = "test"
    order = rng.permutation(owner.size)
    return pd.DataFrame({"individual": owner[order], "split": split[order], "is_new": is_new[owner][order]})
