"""Benchmark: photos/s of `whale_detector.detect_boxes` + `crop_regions` against a one-photo-at-a-time loop.

Renders demo photos with `whale_reid.demo.generate_demo` (TINY_DEMO, or more animals with `--animals`),
and detects with a randomly initialised yolo11n (nc=2, built from the yaml: nothing downloaded) saved
as a checkpoint. Random weights give random boxes, which is fine for speed. The baseline runs
`detect_boxes` with batch 1 and one decoding thread, then `crop_regions` with one thread; ours uses the
params.yaml `crop` settings (batch, workers). A low confidence threshold keeps the crop work realistic.

    python benchmarks/detect.py [--animals 24] [--imgsz 192] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
from pathlib import Path

import pandas as pd
from _common import machine_line, markdown_table, median_seconds, ratio

from whale_core import atomic_path, configure_offline_env
from whale_reid.common.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def random_detector(path: Path, imgsz: int) -> Path:
    """A randomly initialised 2-class yolo11n checkpoint (fullbody, backfin) loadable by ultralytics.YOLO."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolo11n.yaml", nc=2, verbose=False)
    model.names = {0: "fullbody", 1: "backfin"}
    model.args = {"imgsz": imgsz}
    with atomic_path(path) as tmp:
        torch.save({"model": model.half(), "train_args": {"imgsz": imgsz}, "epoch": -1}, tmp)
    return path


def demo_photos(folder: Path, animals: int) -> pd.DataFrame:
    from whale_reid.demo import TINY_DEMO, generate_demo

    generate_demo(dataclasses.replace(TINY_DEMO, n_individuals=animals), folder)
    rows = [
        (p.name, split, str(p)) for split in ("train", "test") for p in sorted((folder / f"{split}_images").iterdir())
    ]
    return pd.DataFrame(rows, columns=["image", "split", "path"])


def time_path(weights: Path, photos: pd.DataFrame, cfg, crops_dir: Path, repeats: int) -> tuple[float, ...]:
    """Photos/s of detect_boxes, of crop_regions, and of both in sequence, for one CropConfig."""
    from whale_detector import crop_regions, detect_boxes

    n = len(photos)
    detect_s = median_seconds(
        lambda: detect_boxes(weights, photos["path"], cfg, names=photos["image"]), repeats=repeats
    )
    boxes = detect_boxes(weights, photos["path"], cfg, names=photos["image"])
    crop_s = median_seconds(lambda: crop_regions(photos, boxes, crops_dir, cfg), repeats=repeats)
    return n / detect_s, n / crop_s, n / (detect_s + crop_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--animals", type=int, default=24, help="TINY_DEMO has 24")
    parser.add_argument("--imgsz", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    configure_offline_env(ROOT)
    logging.basicConfig(level=logging.WARNING)
    from whale_detector import CropConfig

    params = load_params(ROOT / "params.yaml")["crop"]
    ours = CropConfig.from_dict(params).replace(conf_threshold=0.01, imgsz=args.imgsz)
    one_by_one = ours.replace(batch=1, workers=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = demo_photos(Path(tmp) / "raw", args.animals)
        weights = random_detector(Path(tmp) / "random_yolo11n.pt", args.imgsz)
        n = len(photos)
        baseline = "one photo at a time (baseline)"
        for name, cfg in ((baseline, one_by_one), (f"batch {ours.batch}, {ours.workers} workers", ours)):
            rows.append([name, *time_path(weights, photos, cfg, Path(tmp) / "crops", args.repeats)])
    base = rows[0][3]
    print(f"{n} demo photos, random yolo11n at {args.imgsz} px")
    table = [[r[0], r[1], r[2], r[3], ratio(r[3], base)] for r in rows]
    print(markdown_table(["path", "detect photos/s", "crop photos/s", "detect + crop photos/s", "vs baseline"], table))


if __name__ == "__main__":
    main()
