"""Each photo type's renderer: exact boxes inside the photo, fins framed large, deterministic per seed; and the
population's nicks when fins are photographed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from whale_reid.demo import DemoConfig
from whale_reid.demo.photo_types import render_typed_photo
from whale_reid.demo.population import make_individual, make_population
from whale_reid.demo.species import CATALOGUE

FIN_SPECIES = [s for s in CATALOGUE if s.has_dorsal_fin]
FINLESS = [s for s in CATALOGUE if not s.has_dorsal_fin]
#: (photo type, species it is drawn for): fin photos of every fin species, top photos of the finless ones.
CASES = [("lateral", s) for s in CATALOGUE] + [("fin", s) for s in FIN_SPECIES] + [("top", s) for s in FINLESS]
SEEDS = range(12)


def _photo(photo_type, species, seed, difficulty=0.5, width_range=(160, 320)):
    ind = make_individual(np.random.default_rng([seed, 99]), "abcdefabcdef", CATALOGUE.index(species))
    return render_typed_photo(photo_type, ind, species, np.random.default_rng([seed, 1]), width_range, difficulty)


@pytest.mark.parametrize(("photo_type", "species"), CASES, ids=[f"{t}-{s.name}" for t, s in CASES])
def test_boxes_lie_inside_the_photo_and_the_fin_box_inside_the_animal_box(photo_type, species):
    for seed in SEEDS:
        photo = _photo(photo_type, species, seed, difficulty=seed / (len(SEEDS) - 1))
        width, height = photo.image.size
        (fx1, fy1, fx2, fy2), (bx1, by1, bx2, by2) = photo.fullbody, photo.backfin
        assert 0 <= fx1 < fx2 <= width and 0 <= fy1 < fy2 <= height, (seed, photo.fullbody)
        assert fx1 <= bx1 < bx2 <= fx2 and fy1 <= by1 < by2 <= fy2, (seed, photo.fullbody, photo.backfin)


@pytest.mark.parametrize("species", FIN_SPECIES, ids=[s.name for s in FIN_SPECIES])
def test_a_fin_photo_frames_the_fin_at_a_quarter_to_seven_tenths_of_the_height(species):
    shares = []
    for seed in SEEDS:
        photo = _photo("fin", species, seed, difficulty=seed / (len(SEEDS) - 1), width_range=(160, 512))
        shares.append((photo.backfin[3] - photo.backfin[1]) / photo.image.height)
    assert min(shares) >= 0.25 and max(shares) <= 0.7, shares


@pytest.mark.parametrize("photo_type", ["lateral", "fin", "top"])
def test_a_photo_is_the_same_for_the_same_seed_and_differs_for_another(photo_type):
    species = FINLESS[0] if photo_type == "top" else FIN_SPECIES[0]
    first, again, other = _photo(photo_type, species, 3), _photo(photo_type, species, 3), _photo(photo_type, species, 4)
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))
    assert (first.fullbody, first.backfin, first.jpeg_quality) == (again.fullbody, again.backfin, again.jpeg_quality)
    assert first.image.size != other.image.size or not np.array_equal(np.asarray(first.image), np.asarray(other.image))


def test_in_a_top_photo_two_animals_differ_only_where_the_animal_is():
    """Same photo generator, two belugas: the pose depends on the species only, so every pixel away from the
    animals is the same sea (up to a level or two: the contrast is stretched about the whole photo's mean);
    the difference is the animals' own marks."""
    beluga = FINLESS[0]
    index = CATALOGUE.index(beluga)
    a, b = (make_individual(np.random.default_rng(seed), "abcdefabcdef", index) for seed in (1, 2))
    photos = [render_typed_photo("top", ind, beluga, np.random.default_rng(7), (256, 256), 0.0) for ind in (a, b)]
    diff = np.abs(np.asarray(photos[0].image, np.int16) - np.asarray(photos[1].image, np.int16)).max(axis=2)
    x1, y1, x2, y2 = photos[0].fullbody
    inside = np.zeros_like(diff, dtype=bool)
    inside[max(y1 - 2, 0) : y2 + 2, max(x1 - 2, 0) : x2 + 2] = True
    assert diff[~inside].max() <= 2
    assert (diff[inside] > 20).sum() > 50  # the marks on the back tell them apart


def test_every_fin_animal_has_one_to_four_nicks_when_fins_are_photographed():
    cfg = DemoConfig()
    population = make_population(cfg, np.random.default_rng([cfg.seed, 0]))
    fin_animals = [ind for ind in population if CATALOGUE[ind.species_index].has_dorsal_fin]
    assert len(fin_animals) > 40
    assert all(1 <= len(ind.nicks) <= 4 for ind in fin_animals)
    outlines = {ind.nicks.round(6).tobytes() for ind in fin_animals}
    assert len(outlines) == len(fin_animals)  # no two animals share their nicks


def test_the_added_nick_leaves_the_rest_of_the_population_as_drawn():
    """A lateral-only population keeps its fins without nicks; with fins photographed only those animals change."""
    mixed = DemoConfig(n_individuals=120)
    lateral = mixed.replace(photo_types={"lateral": 1.0})
    with_fins = make_population(mixed, np.random.default_rng([mixed.seed, 0]))
    as_before = make_population(lateral, np.random.default_rng([lateral.seed, 0]))
    changed = [k for k, (x, y) in enumerate(zip(with_fins, as_before)) if len(x.nicks) != len(y.nicks)]
    assert changed  # with 120 animals some are born without a nick (10 % of draws)
    for k, (x, y) in enumerate(zip(with_fins, as_before)):
        if k in changed:
            assert len(y.nicks) == 0 and len(x.nicks) == 1 and CATALOGUE[x.species_index].has_dorsal_fin
            x = dataclasses.replace(x, nicks=y.nicks)
        for field in dataclasses.fields(x):
            assert np.array_equal(getattr(x, field.name), getattr(y, field.name)), (k, field.name)
