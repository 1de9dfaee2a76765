"""Stage `train_detector`: train the fullbody/backfin YOLO on the boxes of the train photos.

Reads `<data.raw_dir>/boxes.csv` (image,region,x1,y1,x2,y2; boxes of photos outside `train_images/` are
ignored) and `<data.raw_dir>/train_images/`. Writes `models/detector/` (best.pt, args.yaml) and
`metrics/detector.json`; logs the MLflow run `detector` (params, per-epoch losses, final mAPs).
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
    for source in (result.weights, result.args_yaml):
        with atomic_path(MODEL_DIR / source.name) as tmp:
            shutil.copyfile(source, tmp)
    summary = {
        **result.metrics(),
        "train_seconds": metrics["train_seconds"],
        "n_train_photos": result.n_train_photos,
        "n_val_photos": result.n_val_photos,
        "mlflow_run_id": run.info.run_id,
    }
    atomic_write_json(METRICS_FILE, summary)
    log.info("detector: mAP50 %.3f, mAP50-95 %.3f -> %s", result.map50, result.map50_95, MODEL_DIR)


if __name__ == "__main__":
    run_stage(main)()
