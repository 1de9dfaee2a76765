"""Stage `select`: read the fold runs back from MLflow and keep the high-CV folds for the ensemble.

The run records (`<runs>/<model>/runs.json`, DVC deps of this stage) name the current runs; MLflow is asked
for exactly those runs (`whale_reid.stages.select`). Writes the selection file.
"""

from __future__ import annotations

import logging

import pandas as pd

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_json
from whale_reid.common.params import EmbedderParams
from whale_reid.common.tracking import TrackingConfig, configure_tracking
from whale_reid.stages.select import SelectConfig, select_from_runs

log = logging.getLogger("pipelines.select")


def main() -> None:
    args = stage_paths(__doc__, "runs", "out")
    params = load_params()
    cfg = SelectConfig.from_dict(params.get("select"))
    models = list(EmbedderParams.from_dict(params.get("embedder")).models)
    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))
    selection = select_from_runs(args.runs, models, cfg)
    atomic_write_json(args.out, selection)
    for model, group in pd.DataFrame(selection["members"]).groupby("model"):
        log.info("%s: kept folds %s (CV MAP@5 %s)", model, group["fold"].tolist(), group["cv_map5"].round(4).tolist())


if __name__ == "__main__":
    run_stage(main)()
