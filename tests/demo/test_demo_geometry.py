"""The animal's signature in geometry: nicks cut the fin outline by the area the notch formula predicts."""

from __future__ import annotations

import dataclasses

import numpy as np

from whale_reid.demo.geometry import animal_shapes, fin_size
from whale_reid.demo.population import make_individual
from whale_reid.demo.species import CATALOGUE


def _area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def test_each_nick_removes_a_triangle_of_depth_times_width_over_two():
    species = CATALOGUE[0]
    ind = make_individual(np.random.default_rng(3), "abcdefabcdef", 0)
    nicks = np.array([[0.3, 0.15, 0.1], [0.6, 0.1, 0.12]])  # (position, depth, width) in fin heights
    nicked = dataclasses.replace(ind, nicks=nicks)
    clean = dataclasses.replace(ind, nicks=np.zeros((0, 3)))
    height, _ = fin_size(ind, species)
    # A V-notch of depth d and width w (in fin heights) is a triangle of area d * w / 2 fin heights squared.
    expected = float(np.sum(nicks[:, 1] * nicks[:, 2] / 2)) * height**2
    lost = _area(animal_shapes(clean, species).fin) - _area(animal_shapes(nicked, species).fin)
    assert lost > 0
    np.testing.assert_allclose(lost, expected, rtol=0.1)


def test_marks_differ_between_individuals_and_persist_for_one():
    species = CATALOGUE[1]
    a = make_individual(np.random.default_rng(1), "aaaaaaaaaaaa", 1)
    a_again = make_individual(np.random.default_rng(1), "aaaaaaaaaaaa", 1)
    b = make_individual(np.random.default_rng(2), "bbbbbbbbbbbb", 1)
    np.testing.assert_array_equal(animal_shapes(a, species).fin, animal_shapes(a_again, species).fin)
    assert not np.allclose(animal_shapes(a, species).fin, animal_shapes(b, species).fin)
