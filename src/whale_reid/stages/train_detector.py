"""The `train_detector` stage's work: train the YOLO on the train photos' boxes in an MLflow run `detector`."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from whale_core import InputError, atomic_path, read_table
from whale_detector import DetectorConfig, DetectorResult, train_detector
from whale_reid.common.tracking import log_metrics, params_digest, standard_tags

log = logging.getLogger(__name__)


def epoch_line(metrics: dict[str, float], epoch: int, epochs: int, seconds: float) -> str:
    """One readable line per detector epoch (ultralytics' own bars are off when not on a terminal)."""
    losses = " ".join(f"{k.removeprefix('train_')} {v:.3f}" for k, v in metrics.items() if k.startswith("train_"))
    scores = " ".join(f"{k.removeprefix('val_')} {v:.3f}" for k, v in metrics.items() if k.startswith("val_map"))
    return f"detector epoch {epoch}/{epochs}: {losses}{' · ' + scores if scores else ''} ({seconds:.0f} s)"


def train_logged_detector(cfg: DetectorConfig, boxes_csv: Path, images_dir: Path, work_dir: Path,
                          model_dir: Path) -> tuple[DetectorResult, dict]:  # fmt: skip
    """Train on the boxes of the photos in `images_dir`, log the run, copy best.pt and args.yaml to `model_dir`.

    MLflow must be configured (`whale_reid.common.tracking.configure_tracking`).

    Returns:
        The training result and the run record (`run.json`: time, photo counts, MLflow run id).

    Raises:
        InputError: the boxes file is missing or malformed (naming it and its line).
    """
    import mlflow

    if not boxes_csv.is_file():
        raise InputError(f"{boxes_csv}: boxes file not found (image,region,x1,y1,x2,y2 in pixels)")
    boxes = read_table(boxes_csv)
    if "image" in boxes.columns:
        boxes = boxes[boxes["image"].map(lambda name: (images_dir / name).is_file())]
    with mlflow.start_run(run_name="detector", tags=standard_tags("train_detector", params_digest(cfg.to_dict()))):
        mlflow.log_params(cfg.to_dict())
        started = time.monotonic()

        def on_epoch_end(metrics: dict[str, float], step: int) -> None:
            log_metrics(metrics, step=step)
            log.info(epoch_line(metrics, step, cfg.epochs, time.monotonic() - started))

        result = train_detector(cfg, boxes, images_dir, work_dir, on_epoch_end=on_epoch_end)
        metrics = {key: value for key, value in result.metrics().items() if value is not None}
        metrics["train_seconds"] = round(time.monotonic() - started, 1)
        log_metrics(metrics)
        mlflow.log_artifact(str(result.args_yaml))
        results_csv = result.args_yaml.with_name("results.csv")  # ultralytics' per-epoch table
        if results_csv.is_file():
            mlflow.log_artifact(str(results_csv))
        mlflow.log_artifact(str(result.weights), artifact_path="weights")
        run_id = mlflow.active_run().info.run_id
    for source in (result.weights, result.args_yaml):
        with atomic_path(model_dir / source.name) as tmp:
            shutil.copyfile(source, tmp)
    record = {"train_seconds": metrics["train_seconds"], "n_train_photos": result.n_train_photos,
              "n_val_photos": result.n_val_photos, "mlflow_run_id": run_id}  # fmt: skip
    return result, record
