"""Stage `prepare`: validate the photos' folder in its layout, normalise species, assign CV folds by encounter.

Reads `data.raw_dir` — the Kaggle layout (train.csv, train_images/, test_images/, sample_submission.csv) or a
catalogue (a folder per individual, or the CSV `data.catalogue_csv`; `data.layout` says which or `auto`) — and
writes the prepared `train.csv` (image, species, individual_id, fold; a catalogue adds photo and its encounter,
date, side, location columns where given) and `test.csv` (image; empty for a catalogue), and the counts
(`metrics/prepare.json`).
"""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_csv, atomic_write_json
from whale_reid.common.params import DataParams
from whale_reid.dataset.folds import PrepareConfig
from whale_reid.stages.prepare import prepare_tables

log = logging.getLogger("pipelines.prepare")


def main() -> None:
    args = stage_paths(__doc__, "raw_dir", "out", "metrics")
    params = load_params()
    cfg = PrepareConfig.from_dict(params.get("prepare"))
    train, test, summary = prepare_tables(args.raw_dir, cfg, DataParams.from_dict(params.get("data")))
    atomic_write_csv(args.out / "train.csv", train)
    atomic_write_csv(args.out / "test.csv", test)
    atomic_write_json(args.metrics, summary)
    log.info("prepared %d train / %d test photos, %d individuals", len(train), len(test), summary["individuals"])


if __name__ == "__main__":
    run_stage(main)()
