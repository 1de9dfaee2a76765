"""Out-of-fold tuning of the post-processing knobs: a threshold grid beside a seeded, resumable Optuna study.

The grid's best threshold is enqueued as the study's first trial (on a fresh study), so Optuna's best
MAP@5 is at least the grid's by construction. The neighbour search runs once, at the largest k.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd

from whale_core import InputError
from whale_retrieval.config import TuneConfig
from whale_retrieval.postprocess import StackedNeighbours
from whale_retrieval.ranking import RankedIndividuals, rank_individuals
from whale_retrieval.thresholds import map5_with_threshold, query_species, species_thresholds, sweep_thresholds

log = logging.getLogger(__name__)

OnTrial = Callable[[int, dict[str, Any], float], None]
METRIC_NAME = "oof_map5"  #: the study's objective, as optuna-dashboard names it


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """What `tune_on_neighbours` found.

    Attributes:
        best_params: Optuna's best trial (threshold, k_neighbors, offset_<species>, blend_weight as tuned).
        best_map5: its out-of-fold MAP@5.
        grid_best_threshold, grid_best_map5: the global-threshold grid baseline (k = k_neighbors_max).
        grid: the baseline's `sweep_thresholds` table.
        trials: one row per trial (number, value, params_*, state).
    """

    best_params: dict[str, Any]
    best_map5: float
    grid_best_threshold: float
    grid_best_map5: float
    grid: pd.DataFrame
    trials: pd.DataFrame


def threshold_grid(config: TuneConfig) -> list[float]:
    """threshold_min, +step, ... up to threshold_max (values rounded so Optuna's step grid contains them)."""
    n_steps = int(np.floor((config.threshold_max - config.threshold_min) / config.threshold_step + 1e-9))
    return [round(config.threshold_min + i * config.threshold_step, 10) for i in range(n_steps + 1)]


class _Objective:
    """Scores one set of knobs; rankings are cached per (k, blend weight)."""

    def __init__(self, sims, idx, gallery_labels, truth, species, config, logits, logit_labels) -> None:
        self.sims, self.idx, self.gallery_labels, self.truth = sims, idx, gallery_labels, truth
        self.species, self.config, self.logits, self.logit_labels = species, config, logits, logit_labels
        self._cache: dict[tuple[int, float], RankedIndividuals] = {}

    def ranked(self, k: int, weight: float) -> RankedIndividuals:
        if (k, weight) not in self._cache:
            self._cache[(k, weight)] = rank_individuals(
                self.sims[:, :k], self.idx[:, :k], self.gallery_labels, 5,
                classifier_logits=self.logits, classifier_labels=self.logit_labels, blend_weight=weight,
            )  # fmt: skip
        return self._cache[(k, weight)]

    def __call__(self, trial: optuna.Trial) -> float:
        cfg = self.config
        threshold = trial.suggest_float("threshold", cfg.threshold_min, cfg.threshold_max, step=cfg.threshold_step)
        k = cfg.k_neighbors_max
        if cfg.k_neighbors_min < cfg.k_neighbors_max:
            k = trial.suggest_int("k_neighbors", cfg.k_neighbors_min, cfg.k_neighbors_max)
        weight = 0.0
        if self.logits is not None and cfg.blend_weight_max > 0:
            weight = trial.suggest_float("blend_weight", cfg.blend_weight_min, cfg.blend_weight_max, step=0.1)
        thresholds: float | np.ndarray = threshold
        if self.species is not None:
            offsets = {
                name: trial.suggest_float(
                    f"offset_{name}", -cfg.species_offset_max, cfg.species_offset_max, step=cfg.threshold_step
                )
                for name in sorted(set(self.species.tolist()))
            }
            thresholds = species_thresholds(self.species, threshold, offsets)
        return float(map5_with_threshold(self.ranked(k, weight), self.truth, thresholds).mean())


def _baseline_params(objective: _Objective, threshold: float) -> dict[str, Any]:
    cfg = objective.config
    params: dict[str, Any] = {"threshold": threshold}
    if cfg.k_neighbors_min < cfg.k_neighbors_max:
        params["k_neighbors"] = cfg.k_neighbors_max
    if objective.logits is not None and cfg.blend_weight_max > 0:
        params["blend_weight"] = cfg.blend_weight_min
    if objective.species is not None:
        params.update({f"offset_{name}": 0.0 for name in sorted(set(objective.species.tolist()))})
    return params


def tune_on_neighbours(
    stacked: StackedNeighbours,
    config: TuneConfig,
    *,
    study_name: str,
    storage: str | None = None,
    classifier_logits: np.ndarray | None = None,
    classifier_labels: Sequence[str] | None = None,
    on_trial: OnTrial | None = None,
    user_attrs: dict[str, Any] | None = None,
    progress: bool = False,
) -> TuneResult:
    """Maximise out-of-fold MAP@5 over the threshold (+ k, species offsets, blend weight) on searched neighbours.

    `config.k_neighbors_max` is capped by the neighbours available in `stacked`. When only the threshold is
    searched (one k, no species offsets, no blend weight) the study uses Optuna's `GridSampler` over the
    threshold grid, so each value is tried exactly once and `n_trials` does not apply; otherwise TPE runs
    `n_trials` (the grid's best enqueued first). The study's objective is named `oof_map5`; `user_attrs`
    (e.g. the ensemble members, the MLflow run id) are stored on it; `progress` shows one bar for the trials.
    """
    if config.per_species and stacked.gallery_species is None:
        raise InputError("tune.per_species is on but no gallery species were given")
    k_max = min(config.k_neighbors_max, stacked.sims.shape[1])
    if k_max != config.k_neighbors_max:
        config = config.replace(k_neighbors_max=k_max, k_neighbors_min=min(config.k_neighbors_min, k_max))
    sims, idx, truth, gallery_labels = stacked.sims, stacked.idx, stacked.truth, stacked.gallery_labels
    species = query_species(idx, stacked.gallery_species, 1) if config.per_species else None
    objective = _Objective(sims, idx, gallery_labels, truth, species, config, classifier_logits, classifier_labels)

    thresholds = threshold_grid(config)
    grid = sweep_thresholds(objective.ranked(config.k_neighbors_max, 0.0), truth, thresholds)
    grid_best = grid.loc[grid.map5.idxmax()]
    one_dim = _baseline_params(objective, 0.0).keys() == {"threshold"}
    # a 1-D threshold grid is searched exactly (each value once); TPE once the space has grown
    sampler = (
        optuna.samplers.GridSampler({"threshold": thresholds}, seed=config.seed)
        if one_dim
        else optuna.samplers.TPESampler(seed=config.seed)
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one progress bar instead of a line per trial
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction="maximize", sampler=sampler, load_if_exists=True
    )
    with warnings.catch_warnings():  # experimental in Optuna 3.2–5 but stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([METRIC_NAME])
    for key, value in (user_attrs or {}).items():
        study.set_user_attr(key, value)
    if not study.trials and not one_dim:
        study.enqueue_trial(_baseline_params(objective, float(grid_best.threshold)))
    finished = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    callbacks = [lambda _study, trial: on_trial(trial.number, dict(trial.params), trial.value)] if on_trial else []
    wanted = len(thresholds) if one_dim else config.n_trials
    if wanted > finished:
        study.optimize(
            objective, n_trials=wanted - finished, callbacks=callbacks, show_progress_bar=progress
        )  # the grid sampler stops the study once every threshold was tried
    log.info("tune: grid best %.4f at %.3f; Optuna best %.4f", grid_best.map5, grid_best.threshold, study.best_value)
    return TuneResult(
        best_params=dict(study.best_params),
        best_map5=float(study.best_value),
        grid_best_threshold=float(grid_best.threshold),
        grid_best_map5=float(grid_best.map5),
        grid=grid,
        trials=study.trials_dataframe(attrs=("number", "value", "params", "state")).rename(
            columns={f"value_{METRIC_NAME}": "value"}
        ),
    )
