"""Stage `prepare`: validate a Kaggle-layout folder, normalise species, assign CV folds.

Reads `data.raw_dir` (train.csv, train_images/, test_images/, sample_submission.csv) and writes the prepared
`train.csv` (image, species, individual_id, fold) and `test.csv` (image), and the counts (`metrics/prepare.json`).
"""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_csv, atomic_write_json
from whale_reid.folds import PrepareConfig
from whale_reid.kaggle import prepare_tables

log = logging.getLogger("pipelines.prepare")


def main() -> None:
    args = stage_paths(__doc__, "raw_dir", "out", "metrics")
    cfg = PrepareConfig.from_dict(load_params().get("prepare"))
    train, test, summary = prepare_tables(args.raw_dir, cfg.n_folds, cfg.seed)
    atomic_write_csv(args.out / "train.csv", train)
    atomic_write_csv(args.out / "test.csv", test)
    atomic_write_json(args.metrics, summary)
    log.info("prepared %d train / %d test photos, %d individuals", len(train), len(test), summary["individuals"])


if __name__ == "__main__":
    run_stage(main)()
