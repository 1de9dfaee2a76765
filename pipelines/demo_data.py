"""Stage `demo_data`: render the synthetic whale and dolphin population into the demo folder.

The folder (`--out`, `data/demo` in dvc.yaml) is fixed rather than `data.raw_dir`, so that pointing
`data.raw_dir` at a real Kaggle download can never let this stage clear or overwrite it; the default
`data.raw_dir` is the demo folder.

Reads the `data.demo` params section and writes the Kaggle layout (train.csv, train_images/,
test_images/, sample_submission.csv) plus boxes.csv and test_labels.csv, then the counts
(`--metrics`). Outputs of an earlier run are removed first, as DVC does.
"""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_json
from whale_reid.common.params import DataParams
from whale_reid.stages.demo_data import render_demo_data

log = logging.getLogger("pipelines.demo_data")


def main() -> None:
    args = stage_paths(__doc__, "out", "metrics")
    data = DataParams.from_dict(load_params().get("data"))
    metrics = render_demo_data(data, args.out)
    atomic_write_json(args.metrics, metrics)
    log.info("demo data: %s", metrics)


if __name__ == "__main__":
    run_stage(main)()
