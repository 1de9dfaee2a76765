"""The MLflow UI opens the runs table on the scores: a saved view (MLflow's `mlflow.sharedViewState.<key>`
experiment tag, the envelope its UI reads) with cv_map5, the folds and the final scores as columns."""

from __future__ import annotations

import json

import mlflow

from whale_reid.common.tracking import TrackingConfig, configure_tracking, scores_view
from whale_reid.stages.report import mlflow_links


def test_the_scores_view_lists_the_logged_scores_folds_after_their_mean() -> None:
    names = {"cv_map5_fold10", "cv_map5_fold2", "cv_map5", "train_loss", "oof_map5", "cv_map5_std"}
    assert scores_view(names)["selectedColumns"] == [
        "metrics.`cv_map5`", "metrics.`cv_map5_std`", "metrics.`cv_map5_fold2`", "metrics.`cv_map5_fold10`",
        "metrics.`oof_map5`",
    ]  # fmt: skip


def test_every_stage_saves_the_scores_view_and_the_report_links_to_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    cfg = TrackingConfig(experiment="whale-reid")
    configure_tracking(cfg)
    with mlflow.start_run(run_name="embedder/demo"):
        mlflow.log_metrics({"cv_map5": 0.34, "cv_map5_std": 0.03, "cv_map5_fold0": 0.31, "cv_map5_fold1": 0.37})
    configure_tracking(cfg)  # the next stage brings the view up to date
    experiment = mlflow.get_experiment_by_name("whale-reid")
    view = json.loads(experiment.tags["mlflow.sharedViewState.scores"])
    assert isinstance(view["name"], str) and isinstance(view["createdAt"], int) and isinstance(view["state"], str)
    assert json.loads(view["state"])["selectedColumns"][:3] == [
        "metrics.`cv_map5`", "metrics.`cv_map5_std`", "metrics.`cv_map5_fold0`"
    ]  # fmt: skip
    runs_url, run_url = mlflow_links(f"sqlite:///{tmp_path}/mlflow.db", "whale-reid")
    assert runs_url.endswith(f"/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
                             "&viewStateShareKey=scores")  # fmt: skip
    assert run_url("abc").endswith(f"/#/experiments/{experiment.experiment_id}/runs/abc")
