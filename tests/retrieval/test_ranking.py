"""rank_individuals against a pure-Python oracle, and new_individual insertion known answers."""

from __future__ import annotations

import numpy as np
import pytest

from whale_core import InputError
from whale_retrieval import (
    NEW_INDIVIDUAL,
    RankedIndividuals,
    insert_new_individual,
    knn_search,
    map5_with_threshold,
    map_at_5_per_image,
    query_species,
    rank_individuals,
    species_thresholds,
    sweep_thresholds,
    threshold_for_new_share,
)


def oracle_rank(sims: np.ndarray, idx: np.ndarray, labels: list[str], m: int) -> list[list[tuple[str, float]]]:
    """Per query: every individual's best similarity over its neighbours, sorted by it (stable)."""
    out = []
    for row_sims, row_idx in zip(sims, idx):
        best: dict[str, float] = {}
        for s, i in zip(row_sims, row_idx):
            best[labels[i]] = max(best.get(labels[i], -np.inf), float(s))
        out.append(sorted(best.items(), key=lambda kv: -kv[1])[:m])
    return out


def test_matches_oracle_on_random_neighbours() -> None:
    rng = np.random.default_rng(0)
    labels = [f"ind{i}" for i in rng.integers(0, 12, size=80)]
    sims, idx = knn_search(rng.normal(size=(60, 8)), rng.normal(size=(80, 8)), 15)
    ranked = rank_individuals(sims, idx, labels, 5)
    assert ranked.ids.shape == (60, 5) and ranked.scores.dtype == np.float32
    for row, expected in enumerate(oracle_rank(sims, idx, labels, 5)):
        assert ranked.ids[row, : len(expected)].tolist() == [name for name, _ in expected]
        np.testing.assert_allclose(ranked.scores[row, : len(expected)], [s for _, s in expected])
        assert len(set(ranked.ids[row].tolist()) - {""}) == len(expected)


def test_pads_when_too_few_individuals() -> None:
    sims = np.array([[0.9, 0.8, 0.7]], dtype=np.float32)
    ranked = rank_individuals(sims, np.array([[0, 1, 2]]), ["a", "a", "b"], 4)
    assert ranked.ids.tolist() == [["a", "b", "", ""]]
    assert ranked.scores[0, :2].tolist() == pytest.approx([0.9, 0.7]) and np.isneginf(ranked.scores[0, 2:]).all()


def test_classifier_blend_known_answer() -> None:
    sims, idx = np.array([[0.9, 0.5]], dtype=np.float32), np.array([[0, 1]])
    logits = np.array([[0.1, 0.2, 0.95]])  # classes a, b, c
    ranked = rank_individuals(
        sims, idx, ["a", "b"], 3, classifier_logits=logits, classifier_labels=["a", "b", "c"], blend_weight=0.5
    )
    # a: (0.9+0.1)/2 = 0.5; b: (0.5+0.2)/2 = 0.35; c (not a neighbour, floor 0.5): (0.5+0.95)/2 = 0.725
    assert ranked.ids.tolist() == [["c", "a", "b"]]
    np.testing.assert_allclose(ranked.scores[0], [0.725, 0.5, 0.35], rtol=1e-6)
    with pytest.raises(InputError, match="do not match"):
        rank_individuals(sims, idx, ["a", "b"], 3, classifier_logits=logits, classifier_labels=["a"], blend_weight=1)


RANKED = RankedIndividuals(
    ids=np.array([["a", "b", "c", "d", "e"], ["f", "g", "", "", ""], ["h", "i", "j", "k", "l"]], dtype=object),
    scores=np.array(
        [[0.9, 0.7, 0.5, 0.3, 0.2], [0.95, 0.9, -np.inf, -np.inf, -np.inf], [0.4, 0.3, 0.2, 0.1, 0.0]], np.float32
    ),
)


def test_insert_new_individual_scalar_threshold() -> None:
    answers = insert_new_individual(RANKED, 0.6, pad_ids=["z", "f", "y"])
    assert answers == [
        ["a", "b", NEW_INDIVIDUAL, "c", "d"],
        ["f", "g", NEW_INDIVIDUAL, "z", "y"],  # new at the first empty slot, then pad ids not yet listed
        [NEW_INDIVIDUAL, "h", "i", "j", "k"],
    ]


def test_insert_new_individual_per_query_thresholds_and_default_padding() -> None:
    answers = insert_new_individual(RANKED, np.array([0.1, 0.92, -1.0]))
    assert answers[0] == ["a", "b", "c", "d", "e"]  # nothing below 0.1 within five
    assert answers[1][:2] == ["f", NEW_INDIVIDUAL] and len(set(answers[1])) == 5
    assert answers[2] == ["h", "i", "j", "k", "l"]
    with pytest.raises(InputError, match="3 per-query values"):
        insert_new_individual(RANKED, np.array([0.1, 0.2]))


def test_species_thresholds_from_neighbour_majority() -> None:
    idx = np.array([[0, 1, 2], [3, 1, 2], [4, 0, 1]])
    gallery_species = ["orca", "beluga", "beluga", "orca", "humpback"]
    assert query_species(idx, gallery_species, n_vote=1).tolist() == ["orca", "orca", "humpback"]
    # row 2 is a three-way tie: the nearest neighbour's species wins
    assert query_species(idx, gallery_species, n_vote=3).tolist() == ["beluga", "beluga", "humpback"]
    thresholds = species_thresholds(["orca", "beluga", "fin"], 0.5, {"orca": 0.1, "beluga": -0.2})
    np.testing.assert_allclose(thresholds, [0.6, 0.3, 0.5])


def test_threshold_for_new_share_puts_new_first_for_that_share() -> None:
    rng = np.random.default_rng(1)
    scores = np.sort(rng.random((40, 5)).astype(np.float32), axis=1)[:, ::-1]
    ranked = RankedIndividuals(np.array([[f"x{j}" for j in range(5)]] * 40, dtype=object), scores.copy())
    threshold = threshold_for_new_share(ranked, 0.25)
    first = [answer[0] for answer in insert_new_individual(ranked, threshold)]
    assert first.count(NEW_INDIVIDUAL) == 10
    assert threshold_for_new_share(ranked, 1.0) == np.inf


def test_vectorised_map5_equals_scoring_the_lists() -> None:
    rng = np.random.default_rng(2)
    labels = [f"ind{i}" for i in rng.integers(0, 30, size=200)]
    sims, idx = knn_search(rng.normal(size=(120, 6)), rng.normal(size=(200, 6)), 30)
    ranked = rank_individuals(sims, idx, labels, 5)
    truth = [labels[i] if rng.random() < 0.7 else NEW_INDIVIDUAL for i in rng.integers(0, 200, size=120)]
    per_query = rng.uniform(0.3, 0.9, size=120)
    for threshold in (0.0, 0.5, 0.8, 2.0, per_query):
        expected = map_at_5_per_image(insert_new_individual(ranked, threshold, pad_ids=[]), truth)
        np.testing.assert_allclose(map5_with_threshold(ranked, truth, threshold), expected)
    table = sweep_thresholds(ranked, truth, [0.0, 0.5])
    assert list(table.columns) == ["threshold", "map5", "map5_known", "map5_new"]
    assert table.map5.iloc[1] == pytest.approx(map5_with_threshold(ranked, truth, 0.5).mean())
    assert table.map5_new.iloc[0] == 0.0  # threshold 0 never inserts new_individual within five here
