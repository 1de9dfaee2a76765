"""Metrics read in MLflow with 4 decimals, as in the metrics files; the fold selection still ranks exact scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import pytest

from whale_core import InputError
from whale_reid.common.tracking import log_metrics
from whale_reid.stages.select import SelectConfig, select_from_runs


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> mlflow.MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("rounding")
    return mlflow.MlflowClient(uri)


def test_a_logged_metric_reads_back_with_4_decimals(store: mlflow.MlflowClient) -> None:
    with mlflow.start_run() as run:
        log_metrics({"val_map5": 0.34351234, "train_loss": 2.718281828, "seconds": 1234.56789}, step=3)
        log_metrics({"lr": 0.000123456789, "new_share": float("nan")}, step=3)
    metrics = store.get_run(run.info.run_id).data.metrics
    assert {k: metrics[k] for k in ("val_map5", "train_loss", "seconds")} == {
        "val_map5": 0.3435, "train_loss": 2.7183, "seconds": 1234.5679
    }  # fmt: skip
    assert metrics["lr"] == 0.0001235  # 4 decimals would read 0.0001: a learning rate keeps 4 significant digits
    assert math.isnan(metrics["new_share"])
    assert [(m.step, m.value) for m in store.get_metric_history(run.info.run_id, "val_map5")] == [(3, 0.3435)]


def _fold_runs(runs_dir: Path, scores: list[float], logged: list[float]) -> None:
    """A model's run records with the exact `scores`, and its fold runs in MLflow with `logged` as cv_map5."""
    folds = {}
    for fold, (score, shown) in enumerate(zip(scores, logged)):
        with mlflow.start_run(tags={"stage": "train_embedder", "params_digest": "d1"}) as run:
            log_metrics({"cv_map5": shown})
        folds[str(fold)] = {"run_id": run.info.run_id, "cv_map5": score}
    (runs_dir / "demo").mkdir(parents=True)
    (runs_dir / "demo/runs.json").write_text(json.dumps({"params_digest": "d1", "folds": folds}))


def test_selection_ranks_the_exact_scores_mlflow_shows_rounded(store: mlflow.MlflowClient, tmp_path: Path) -> None:
    scores = [0.61231, 0.61234]  # both read 0.6123 in MLflow: ranked by those, fold 0 would win the tie
    _fold_runs(tmp_path / "runs", scores, scores)
    selection = select_from_runs(tmp_path / "runs", ["demo"], SelectConfig(rule="top_n", top_n=1))
    assert selection["source"] == "mlflow"
    assert [(m["fold"], m["cv_map5"]) for m in selection["members"]] == [(1, 0.61234)]


def test_selection_refuses_records_mlflow_does_not_confirm(store: mlflow.MlflowClient, tmp_path: Path) -> None:
    _fold_runs(tmp_path / "runs", [0.61234, 0.7], [0.61234, 0.6])
    with pytest.raises(InputError, match=r"has cv_map5 0\.6, the run records \(runs.json\) 0\.7"):
        select_from_runs(tmp_path / "runs", ["demo"], SelectConfig(rule="top_n", top_n=1))
