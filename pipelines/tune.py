"""Stage `tune`: Optuna search of the post-processing knobs on out-of-fold retrieval of the selected ensemble.

Reads the selection, the prepared train table, the fold embeddings and the train features; writes the
answer rule (postprocess.json), the threshold curve (the tuned threshold's row has chosen = 1, which
`dvc plots` marks), the OOF predictions and the metrics file; logs the trials, the best one and the curve to
MLflow (`whale_reid.stages.tune`).
"""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_json
from whale_reid.answers.verification import MatchConfig
from whale_reid.common.tracking import TrackingConfig, configure_tracking
from whale_reid.stages.tune import TUNE_METRICS, TunePaths, TuneStageConfig, tune_answer_rule, write_tune_outputs

log = logging.getLogger("pipelines.tune")


def main() -> None:
    args = stage_paths(__doc__, "selection", "train", "embeddings", "features", "postprocess", "curve", "oof",
                       "metrics")  # fmt: skip
    params = load_params()
    cfg = TuneStageConfig.from_dict(params.get("tune"))
    match = MatchConfig.from_dict(params.get("match"))
    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))  # an outage fails before the work
    tuned = tune_answer_rule(cfg, match, TunePaths(args.selection, args.train, args.embeddings, args.features))
    summary = tuned.summary
    log.info("OOF MAP@5 %.4f (grid %.4f) at threshold %.3f", summary["oof_map5"], summary["grid_best_map5"],
             summary["threshold"])  # fmt: skip
    write_tune_outputs(tuned, args.postprocess, args.curve, args.oof)
    atomic_write_json(args.metrics, {k: round(float(summary[k]), 4) for k in TUNE_METRICS})


if __name__ == "__main__":
    run_stage(main)()
