"""Stacked out-of-fold splits behave exactly like the splits searched one by one."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from whale_core import InputError
from whale_retrieval import (
    NEW_INDIVIDUAL,
    AnswerRule,
    PostProcessing,
    RetrievalSplit,
    TuneConfig,
    insert_new_individual,
    knn_search,
    most_frequent_ids,
    rank_individuals,
    stack_splits,
    threshold_grid,
    tune_on_neighbours,
)


def _unit(rng, n, d=8):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _split(rng, n_query, n_gallery, prefix):
    gallery_labels = [f"{prefix}{i % 4}" for i in range(n_gallery)]
    query_labels = [f"{prefix}{i % 5}" for i in range(n_query)]  # id 4 is absent from the gallery
    species = ["beluga" if i % 2 else "humpback_whale" for i in range(n_gallery)]
    return RetrievalSplit(_unit(rng, n_query), query_labels, _unit(rng, n_gallery), gallery_labels, species)


def test_stacked_neighbours_equal_per_split_search():
    rng = np.random.default_rng(0)
    splits = [_split(rng, 6, 9, "a"), _split(rng, 4, 7, "b")]
    stacked = stack_splits(splits, k=10)
    assert stacked.sims.shape == (10, 7)  # k capped by the smallest gallery
    offset = 0
    row = 0
    for split in splits:
        sims, idx = knn_search(split.query_emb, split.gallery_emb, 7)
        n = len(split.query_emb)
        np.testing.assert_array_equal(stacked.sims[row : row + n], sims)
        np.testing.assert_array_equal(stacked.idx[row : row + n], idx + offset)
        labels = np.asarray(split.gallery_labels)
        np.testing.assert_array_equal(stacked.gallery_labels[stacked.idx[row : row + n]], labels[idx])
        expected_truth = [q if q in set(split.gallery_labels) else NEW_INDIVIDUAL for q in split.query_labels]
        assert stacked.truth[row : row + n] == expected_truth
        row, offset = row + n, offset + len(split.gallery_emb)


def test_answer_rule_matches_the_building_blocks():
    rng = np.random.default_rng(1)
    split = _split(rng, 12, 20, "x")
    sims, idx = knn_search(split.query_emb, split.gallery_emb, 20)
    post = PostProcessing(threshold=0.3, k_neighbors=10, species_offsets={"beluga": 0.2})
    answers = AnswerRule(post).apply(sims, idx, split.gallery_labels, split.gallery_species).ids
    ranked = rank_individuals(sims[:, :10], idx[:, :10], split.gallery_labels, 5)
    top1_species = np.asarray(split.gallery_species)[idx[:, 0]]
    thresholds = np.where(top1_species == "beluga", 0.5, 0.3)
    pad = most_frequent_ids(split.gallery_labels, 6)
    assert answers == insert_new_individual(ranked, thresholds, 5, pad_ids=pad)
    assert all(len(set(a)) == 5 for a in answers)
    round_trip = PostProcessing.from_best_params({"threshold": 0.3, "k_neighbors": 10, "offset_beluga": 0.2}, 50)
    assert round_trip == post and round_trip.to_dict()["species_offsets"] == {"beluga": 0.2}


def test_tune_on_stacked_folds_and_errors(tmp_path):
    rng = np.random.default_rng(2)
    stacked = stack_splits([_split(rng, 8, 12, "a"), _split(rng, 8, 12, "b")], k=50)
    cfg = TuneConfig(n_trials=4, threshold_step=0.1, k_neighbors_min=50, k_neighbors_max=50)
    storage = f"sqlite:///{tmp_path}/o.db"
    attrs = {"members": ["demo/fold0"], "mlflow_run_id": "abc123"}
    result = tune_on_neighbours(stacked, cfg, study_name="s", storage=storage, user_attrs=attrs)
    # only the threshold is searched: the grid sampler tries each grid value exactly once (n_trials does not apply)
    grid = threshold_grid(cfg)
    assert len(result.trials) == len(grid) and sorted(result.trials.params_threshold) == pytest.approx(grid)
    assert result.best_map5 == pytest.approx(result.grid_best_map5)
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.metric_names == ["oof_map5"] and study.user_attrs == attrs
    again = tune_on_neighbours(stacked, cfg.replace(n_trials=40), study_name="s", storage=storage)
    assert len(again.trials) == len(grid)  # a finished grid is not searched again
    cfg = cfg.replace(k_neighbors_min=10)  # the space has grown: TPE, n_trials of them, the grid's best first
    result = tune_on_neighbours(stacked, cfg, study_name="t", storage=storage)
    assert len(result.trials) == 4 and result.trials.value.iloc[0] == pytest.approx(result.grid_best_map5)
    with pytest.raises(InputError, match="3 query labels for 8 rows"):
        bad = _split(rng, 8, 12, "c")
        stack_splits([RetrievalSplit(bad.query_emb, ["a", "b", "c"], bad.gallery_emb, bad.gallery_labels)], 5)
