"""Stage `train_detector`: train the fullbody/backfin YOLO on the boxes of the train photos.

Reads the boxes file (image,region,x1,y1,x2,y2; boxes of photos outside the images folder are ignored) and
the train photos. Writes the model folder (best.pt, args.yaml, run.json: the MLflow run id, photo counts,
time) and the metrics file (mAPs, rounded); logs the MLflow run `detector` (params, per-epoch losses, val
mAPs of the validated epochs, results.csv, args.yaml, the weights). The YOLO dataset and ultralytics' run
folder live in the work folder (git-ignored, not tracked by DVC).
"""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_json
from whale_detector import DetectorConfig
from whale_reid.common.tracking import TrackingConfig, configure_tracking
from whale_reid.stages.train_detector import train_logged_detector

log = logging.getLogger("pipelines.train_detector")


def main() -> None:
    args = stage_paths(__doc__, "boxes", "images", "model_dir", "work_dir", "metrics")
    params = load_params()
    cfg = DetectorConfig.from_dict(params.get("detector"))
    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))
    result, record = train_logged_detector(cfg, args.boxes, args.images, args.work_dir, args.model_dir)
    atomic_write_json(args.model_dir / "run.json", record)  # the run behind the numbers; metrics: the numbers only
    atomic_write_json(args.metrics, {k: None if v is None else round(v, 4) for k, v in result.metrics().items()})
    log.info("detector: mAP50 %.3f, mAP50-95 %.3f -> %s", result.map50, result.map50_95, args.model_dir)


if __name__ == "__main__":
    run_stage(main)()
