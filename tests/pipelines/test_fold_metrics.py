"""The per-epoch fold metrics in MLflow: the validation threshold only where it means something."""

from __future__ import annotations

import math

import mlflow

from whale_reid.training.records import log_epoch


def test_the_similarity_threshold_is_logged_only_with_unseen_animals_in_validation(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("fold-metrics")
    with mlflow.start_run() as run:
        log_epoch({"train_loss": 1.5, "val_map5": 0.3, "val_map5_new": math.nan, "val_threshold": 0.0}, 0)
        log_epoch({"train_loss": 1.2, "val_map5": 0.4, "val_map5_new": 0.5, "val_threshold": 0.35}, 1)
    client = mlflow.tracking.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "val_similarity_threshold")
    assert [(m.step, m.value) for m in history] == [(1, 0.35)]
    assert client.get_metric_history(run.info.run_id, "threshold") == []
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_map5")] == [0, 1]
