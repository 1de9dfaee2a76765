"""Stage `demo_data`: render the synthetic whale and dolphin population into `data/demo`.

The folder is fixed (not `data.raw_dir`) so that pointing `data.raw_dir` at a real Kaggle download
can never let this stage clear or overwrite it; the default `data.raw_dir` is `data/demo`.

Reads the `data.demo` params section and writes the Kaggle layout (train.csv, train_images/,
test_images/, sample_submission.csv) plus boxes.csv and test_labels.csv, then
`metrics/demo_data.json` with the counts. Outputs of an earlier run are removed first, as DVC does.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pipelines._common import load_params, run_stage
from whale_core import atomic_write_json
from whale_reid.demo import DemoConfig, generate_demo
from whale_reid.demo.writer import OUTPUT_NAMES

log = logging.getLogger("pipelines.demo_data")
METRICS_FILE = Path("metrics/demo_data.json")
DEMO_DIR = Path("data/demo")


def clear_outputs(raw_dir: Path) -> None:
    """Delete what this stage wrote into `raw_dir` before (only the demo's own file and folder names)."""
    for name in OUTPUT_NAMES:
        path = raw_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def main() -> None:
    params = load_params()
    raw_dir = DEMO_DIR
    cfg = DemoConfig.from_dict(params["data"].get("demo"), section="data.demo")

    clear_outputs(raw_dir)
    summary = generate_demo(cfg, raw_dir)

    metrics = {
        "photos": summary.n_train_photos + summary.n_test_photos,
        "train_photos": summary.n_train_photos,
        "test_photos": summary.n_test_photos,
        "individuals": summary.n_individuals,
        "train_individuals": summary.n_train_individuals,
        "species": summary.n_species,
        "singleton_individuals": summary.n_singletons,
        "typo_species_labels": summary.n_typo_rows,
        "test_new_share": round(summary.test_new_share, 4),
    }
    atomic_write_json(METRICS_FILE, metrics)
    log.info("demo data: %s", metrics)


if __name__ == "__main__":
    run_stage(main)()
