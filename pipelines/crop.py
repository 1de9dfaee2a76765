"""Stage `crop`: cut the fullbody and backfin crops of every train and test photo (`whale_reid.stages.crop`).

Reads the prepared tables, the photos of `data.raw_dir` and the boxes from the detector or, with
`crop.box_source: boxes_csv`, the given boxes file (`--box-input` is `crop.box_input`); writes the crops,
their `boxes.csv` and the metrics file (fallback share, mean IoU against the true boxes, per species).
"""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_csv, atomic_write_json
from whale_detector import CropConfig
from whale_reid.stages.crop import CropPaths, crop_line, crop_photos

log = logging.getLogger("pipelines.crop")


def main() -> None:
    args = stage_paths(__doc__, "prepared", "raw_dir", "box_input", "out", "metrics")
    cfg = CropConfig.from_dict(load_params().get("crop"))
    table, summary = crop_photos(cfg, CropPaths(args.prepared, args.raw_dir, args.box_input, args.out))
    atomic_write_csv(args.out / "boxes.csv", table)
    atomic_write_json(args.metrics, summary)
    log.info("%s", crop_line(summary, args.out, args.metrics))


if __name__ == "__main__":
    run_stage(main)()
