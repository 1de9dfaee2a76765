"""Stage `train_detector`: train the fullbody/backfin YOLO on the boxes of the train photos.

Reads `<data.raw_dir>/boxes.csv` (image,region,x1,y1,x2,y2; boxes of photos outside `train_images/` are
ignored) and `<data.raw_dir>/train_images/`. Writes `models/detector/` (best.pt, args.yaml, run.json: the
MLflow run id, photo counts, time) and `metrics/detector.json` (mAPs, rounded); logs the MLflow run
`detector` (params, per-epoch losses, val mAPs of the validated epochs, results.csv, args.yaml, the weights).
The YOLO dataset and ultralytics' run folder live in `runs/detector/` (git-ignored, not tracked by DVC).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pandas as pd

from pipelines._common import load_params, params_digest, run_stage
from pipelines._tracking import TrackingConfig, configure_tracking, standard_tags
from whale_core import InputError, atomic_path, atomic_write_json
from whale_detector import DetectorConfig, train_detector

log = logging.getLogger("pipelines.train_detector")
MODEL_DIR = Path("models/detector")
WORK_DIR = Path("runs/detector")
METRICS_FILE = Path("metrics/detector.json")
RUN_FILE = MODEL_DIR / "run.json"


def read_boxes(path: Path) -> pd.DataFrame:
    """A boxes CSV as a DataFrame (contents are validated by the package)."""
    if not path.is_file():
        raise InputError(f"{path}: boxes file not found (image,region,x1,y1,x2,y2 in pixels)")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV ({err})") from None


def main() -> None:
    import mlflow

    params = load_params()
    raw_dir = Path(params["data"]["raw_dir"])
    cfg = DetectorConfig.from_dict(params.get("detector"))
    images_dir = raw_dir / "train_images"
    boxes = read_boxes(raw_dir / "boxes.csv")
    if "image" in boxes.columns:
        boxes = boxes[boxes["image"].astype(str).map(lambda name: (images_dir / name).is_file())]
    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))
    tags = standard_tags("train_detector", params_digest(params.get("detector")))
    with mlflow.start_run(run_name="detector", tags=tags) as run:
        mlflow.log_params(cfg.to_dict())
        started = time.monotonic()
        result = train_detector(
            cfg, boxes, images_dir, WORK_DIR, on_epoch_end=lambda metrics, step: mlflow.log_metrics(metrics, step=step)
        )
        metrics = {key: value for key, value in result.metrics().items() if value is not None}
        metrics["train_seconds"] = round(time.monotonic() - started, 1)
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(result.args_yaml))
        results_csv = result.args_yaml.with_name("results.csv")  # ultralytics' per-epoch table
        if results_csv.is_file():
            mlflow.log_artifact(str(results_csv))
        mlflow.log_artifact(str(result.weights), artifact_path="weights")
    for source in (result.weights, result.args_yaml):
        with atomic_path(MODEL_DIR / source.name) as tmp:
            shutil.copyfile(source, tmp)
    record = {
        "train_seconds": metrics["train_seconds"],
        "n_train_photos": result.n_train_photos,
        "n_val_photos": result.n_val_photos,
        "mlflow_run_id": run.info.run_id,
    }
    atomic_write_json(RUN_FILE, record)  # the run behind the numbers; the metrics file holds the numbers only
    atomic_write_json(METRICS_FILE, {k: None if v is None else round(v, 4) for k, v in result.metrics().items()})
    log.info("detector: mAP50 %.3f, mAP50-95 %.3f -> %s", result.map50, result.map50_95, MODEL_DIR)


if __name__ == "__main__":
    run_stage(main)()
