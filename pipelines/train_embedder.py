"""Stage `train_embedder --model NAME`: train every configured CV fold of one zoo model, embed, log.

Reads the prepared tables and the crops; writes `<model-dir>/fold<k>/{best,last}.pt` and `runs.json` (the
MLflow run ids, digests and per-fold details `select` reads), `<embeddings>/{oof.npz, fold<k>/{train,test}.npz}`,
the metrics file (CV MAP@5: mean, std, per fold) and the curves CSV (validated epochs, a row per fold and
epoch); MLflow parent run `embedder/<model>` with a child run `fold<k>` per fold. Finished folds are skipped,
interrupted ones resume (`whale_reid.stages.train_embedder`).

Runs unchanged under `torchrun --nproc_per_node=N -m pipelines.train_embedder ...`: every rank trains and
extracts (DDP, sharded extraction), only rank 0 talks to MLflow and writes files.
"""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_embedder import distributed as dist_utils
from whale_reid.common.params import EmbedderParams
from whale_reid.common.tracking import TrackingConfig
from whale_reid.stages.train_embedder import TrainingPaths, train_model

log = logging.getLogger("pipelines.train_embedder")


def main() -> None:
    args = stage_paths(__doc__, "prepared", "crops", "model_dir", "embeddings", "metrics", "curves",
                       model="an entry of params embedder.zoo")  # fmt: skip
    dist_utils.init_from_env()
    params = load_params()
    paths = TrainingPaths(args.prepared, args.crops, args.model_dir, args.embeddings, args.metrics, args.curves)
    embedder = EmbedderParams.from_dict(params.get("embedder"))
    summary = train_model(embedder, TrackingConfig.from_dict(params.get("tracking")), args.model, paths)
    if summary is not None:
        log.info("%s: cv_map5 %.4f ± %.4f over folds %s", args.model, summary["cv_map5"], summary["cv_map5_std"],
                 list(embedder.folds))  # fmt: skip
    dist_utils.shutdown()


if __name__ == "__main__":
    run_stage(main)()
