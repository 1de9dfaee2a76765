"""Stage `prepare`: validate a Kaggle-layout folder, normalise species, assign CV folds.

Reads `data.raw_dir` (train.csv, train_images/, test_images/, sample_submission.csv) and writes
`data/prepared/train.csv` (image, species, individual_id, fold) and `data/prepared/test.csv` (image).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines._common import load_params, run_stage
from whale_core import atomic_write_csv, atomic_write_json
from whale_reid.folds import PrepareConfig, assign_folds
from whale_reid.kaggle import read_test, read_train

log = logging.getLogger("pipelines.prepare")
OUT_DIR = Path("data/prepared")


def main() -> None:
    params = load_params()
    raw_dir = Path(params["data"]["raw_dir"])
    cfg = PrepareConfig.from_dict(params.get("prepare"))

    train = read_train(raw_dir)
    test = read_test(raw_dir)
    train["fold"] = assign_folds(train["individual_id"], cfg.n_folds, cfg.seed)

    atomic_write_csv(OUT_DIR / "train.csv", train)
    atomic_write_csv(OUT_DIR / "test.csv", test)
    counts = train["individual_id"].value_counts()
    summary = {
        "train_images": len(train),
        "test_images": len(test),
        "individuals": int(counts.size),
        "singleton_individuals": int((counts == 1).sum()),
        "species": int(train["species"].nunique()),
        "fold_sizes": train["fold"].value_counts().sort_index().tolist(),
    }
    atomic_write_json("metrics/prepare.json", summary)
    log.info("prepared %d train / %d test photos, %d individuals", len(train), len(test), counts.size)


if __name__ == "__main__":
    run_stage(main)()
