"""Optuna tuning: grid baseline ≤ Optuna best, deterministic for a seed, resumable from sqlite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from whale_core import InputError
from whale_retrieval import RetrievalSplit, TuneConfig, stack_splits
from whale_retrieval.tuning import threshold_grid, tune_on_neighbours


def clustered(seed: int = 0):
    """30 individuals in 2 species; queries are new photos of 25 known and 5 unseen individuals."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(35, 16))
    gallery_ids = np.repeat(np.arange(30), 3)
    gallery = centres[gallery_ids] + 0.6 * rng.normal(size=(90, 16))
    query_ids = np.concatenate([np.arange(25), np.arange(30, 35)])
    query = centres[query_ids] + 0.6 * rng.normal(size=(30, 16))
    species = ["orca" if i % 2 else "beluga" for i in gallery_ids]
    return query, [f"w{i}" for i in query_ids], gallery, [f"w{i}" for i in gallery_ids], species


CONFIG = TuneConfig(n_trials=5, seed=3, threshold_step=0.05, k_neighbors_min=5, k_neighbors_max=20, per_species=True)


def run(storage: str | None, n_trials: int, seen: list | None = None):
    query, query_labels, gallery, gallery_labels, species = clustered()
    stacked = stack_splits([RetrievalSplit(query, query_labels, gallery, gallery_labels, species)], 20)
    return tune_on_neighbours(
        stacked, CONFIG.replace(n_trials=n_trials), study_name="t", storage=storage,
        on_trial=(lambda number, params, value: seen.append((number, value))) if seen is not None else None,
    )  # fmt: skip


def test_grid_is_a_lower_bound_and_callback_sees_every_trial() -> None:
    seen: list = []
    result = run(None, 5, seen)
    assert result.best_map5 >= result.grid_best_map5 > 0.0
    assert result.grid.map5.max() == pytest.approx(result.grid_best_map5)
    # the first trial is the grid's best, replayed
    assert result.trials.value.iloc[0] == pytest.approx(result.grid_best_map5)
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    assert set(result.best_params) >= {"threshold", "k_neighbors", "offset_orca", "offset_beluga"}


def test_deterministic_for_a_seed_and_resumable(tmp_path: Path) -> None:
    first = run(None, 5).trials
    again = run(None, 5).trials
    assert first.drop(columns=["state"]).equals(again.drop(columns=["state"]))

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    partial = run(storage, 5).trials
    resumed = run(storage, 10).trials
    assert len(resumed) == 10 and resumed.number.tolist() == list(range(10))
    params = [c for c in partial.columns if c.startswith("params_")]
    assert resumed.head(5)[["value", *params]].reset_index(drop=True).equals(partial[["value", *params]])
    np.testing.assert_allclose(partial.value, first.value)
    assert len(run(storage, 10).trials) == 10  # nothing left to run


def test_threshold_grid_and_errors() -> None:
    assert threshold_grid(TuneConfig(threshold_min=0.2, threshold_max=0.5, threshold_step=0.1)) == [0.2, 0.3, 0.4, 0.5]
    query, labels, gallery, gallery_labels, _ = clustered()
    with pytest.raises(InputError, match="per_species"):
        stacked = stack_splits([RetrievalSplit(query, labels, gallery, gallery_labels)], 20)
        tune_on_neighbours(stacked, CONFIG, study_name="x")
    with pytest.raises(InputError, match="unknown key 'n_trial'"):
        TuneConfig.from_dict({"n_trial": 3})


def test_a_one_dimensional_space_is_searched_as_a_grid_each_threshold_once() -> None:
    """One k, no species offsets, no blend: `GridSampler` tries every grid threshold exactly once, however many
    trials are asked for (TPE over the same 21 points repeats some and misses others)."""
    query, query_labels, gallery, gallery_labels, species = clustered()
    stacked = stack_splits([RetrievalSplit(query, query_labels, gallery, gallery_labels, species)], 20)
    config = TuneConfig(n_trials=100, seed=3, threshold_step=0.05, k_neighbors_min=20, k_neighbors_max=20)
    result = tune_on_neighbours(stacked, config, study_name="grid", storage=None)
    tried = sorted(result.trials.params_threshold.round(6))
    assert tried == sorted(np.round(threshold_grid(config), 6)) and len(tried) == 21
