"""Stage `report`: the report page — CV per fold, selection, threshold curve, detector mAP, and a sample of
out-of-fold queries with their top-5 (correct answer marked), from the stages' outputs
(`whale_reid.stages.report`). Logged to MLflow as an artifact."""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_text
from whale_reid.answers.verification import MatchConfig
from whale_reid.common.params import EmbedderParams
from whale_reid.common.tracking import TrackingConfig, configure_tracking
from whale_reid.stages.report import ReportPaths, build_report

log = logging.getLogger("pipelines.report")


def main() -> None:
    args = stage_paths(__doc__, "outputs", "metrics", "runs", "crops", "out")
    params = load_params()
    embedder = EmbedderParams.from_dict(params.get("embedder"))
    region = embedder.common.get("extract_region", "fullbody")
    tracking = TrackingConfig.from_dict(params.get("tracking"))
    uri = configure_tracking(tracking)
    paths = ReportPaths(args.outputs, args.metrics, args.runs, args.crops)
    html = build_report(paths, list(embedder.models), region, MatchConfig.from_dict(params.get("match")), uri,
                        tracking.experiment)  # fmt: skip
    out = atomic_write_text(args.out, html)
    import mlflow

    with mlflow.start_run(run_name="report", tags={"stage": "report"}):
        mlflow.log_artifact(str(out))
    log.info("wrote %s", out)


if __name__ == "__main__":
    run_stage(main)()
