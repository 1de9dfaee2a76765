"""Stage `predict`: the selected ensemble's test answers → the submission, the saved gallery (what
`whale-reid identify` queries; with the train features when verified) and the final metrics
(`whale_reid.stages.predict`); the MLflow run `ensemble` logs them and registers the ensemble."""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_json
from whale_detector import CropConfig
from whale_reid.answers.verification import MatchConfig
from whale_reid.common.tracking import TrackingConfig, configure_tracking
from whale_reid.stages.predict import (
    PredictConfig,
    PredictOutputs,
    PredictPaths,
    log_ensemble_run,
    predict_test,
    write_predict_outputs,
)

log = logging.getLogger("pipelines.predict")


def main() -> None:
    args = stage_paths(__doc__, "selection", "postprocess", "oof", "prepared", "embeddings", "features", "raw_dir",
                       "submission", "answers", "gallery", "metrics")  # fmt: skip
    params = load_params()
    cfg = PredictConfig.from_dict(params.get("predict"))
    match = MatchConfig.from_dict(params.get("match"))
    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))  # an outage fails before the work
    paths = PredictPaths(args.selection, args.postprocess, args.prepared, args.embeddings, args.features, args.raw_dir)
    prediction = predict_test(cfg, match, paths)
    crop = CropConfig.from_dict(params.get("crop")).to_dict()  # identify cuts its crops as the gallery's were
    write_predict_outputs(
        prediction, match, crop, args.features, PredictOutputs(args.submission, args.answers, args.gallery)
    )
    atomic_write_json(args.metrics, prediction.final)
    log_ensemble_run(prediction, [args.submission, args.oof, args.postprocess], cfg.registered_model)
    log.info("submission: %d test photos; %s", len(prediction.submission),
             ", ".join(f"{k} {v:.4f}" for k, v in prediction.final.items()))  # fmt: skip


if __name__ == "__main__":
    run_stage(main)()
