"""Stage `crop`: cut the fullbody and backfin crops of every train and test photo.

Reads `data/prepared/{train,test}.csv` (column image), the photos in `<data.raw_dir>/{train,test}_images/`
and boxes from the detector (`models/detector/best.pt`) or, with `crop.box_source: boxes_csv`, from the
given `crop.boxes_csv`. Writes `data/crops/<region>/<split>/<image>.jpg`, `data/crops/boxes.csv` and
`metrics/crop.json` (fallback share; mean IoU against `<raw_dir>/boxes.csv` for the test photos it covers;
both per species under `by_species` where species are known).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from pipelines._common import load_params, run_stage
from whale_core import InputError, atomic_write_csv, atomic_write_json, read_table, resolve_image_path
from whale_detector import CropConfig, crop_quality, crop_regions, detect_boxes, given_boxes
from whale_detector.boxes import BOX_COLUMNS, validate_boxes

log = logging.getLogger("pipelines.crop")
PREPARED_DIR = Path("data/prepared")
WEIGHTS = Path("models/detector/best.pt")
OUT_DIR = Path("data/crops")
METRICS_FILE = Path("metrics/crop.json")


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV as a DataFrame (index = data row, so line = index + 2), or an InputError naming the file."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV ({err})") from None


def read_images(raw_dir: Path) -> pd.DataFrame:
    """image, split, path (and species where the prepared table has it) of every train and test photo."""
    frames = []
    for split in ("train", "test"):
        csv = PREPARED_DIR / f"{split}.csv"
        table = read_table(csv)
        if "image" not in table.columns:
            raise InputError(f"{csv}: missing column 'image'")
        names = table["image"].astype(str)
        paths = [resolve_image_path(raw_dir / f"{split}_images", name) for name in names]
        species = table["species"].astype(str) if "species" in table.columns else None
        frames.append(pd.DataFrame({"image": names, "split": split, "path": paths, "species": species}))
    return pd.concat(frames, ignore_index=True)


def photo_species(images: pd.DataFrame, raw_dir: Path) -> dict[str, str]:
    """Species of the photos as the prepared tables give them, completed (test photos) by
    `<raw_dir>/test_labels.csv` where the data has one (the demo's hidden truth): for the per-species crop
    numbers only."""
    known = images.dropna(subset=["species"])
    species = dict(zip(known["image"], known["species"]))
    hidden = raw_dir / "test_labels.csv"
    table = read_csv(hidden) if hidden.is_file() else pd.DataFrame()
    if {"image", "species"} <= set(table.columns):
        species = dict(zip(table["image"].astype(str), table["species"].astype(str))) | species
    return species


def main() -> None:
    params = load_params()
    raw_dir = Path(params["data"]["raw_dir"])
    cfg = CropConfig.from_dict(params.get("crop"))
    images = read_images(raw_dir)
    # every box is checked before any crop is written: a bad line fails the stage with the old crops intact
    true_csv = raw_dir / "boxes.csv"  # true boxes: the demo has them for test photos too
    truth = read_csv(true_csv) if true_csv.is_file() else pd.DataFrame(columns=list(BOX_COLUMNS))
    truth = validate_boxes(truth, str(true_csv))
    truth = truth[truth["image"].astype(str).isin(set(images.loc[images["split"] == "test", "image"]))]
    n_clipped = 0
    if cfg.box_source == "detector":
        boxes = detect_boxes(WEIGHTS, images["path"].tolist(), cfg, names=images["image"].tolist())
    else:
        boxes = given_boxes(read_csv(Path(cfg.boxes_csv)), images, cfg, source=str(cfg.boxes_csv))
        n_clipped = int(boxes.attrs.get("n_clipped", 0))
    table = crop_regions(images, boxes, OUT_DIR, cfg)
    atomic_write_csv(OUT_DIR / "boxes.csv", table)
    quality = crop_quality(table, truth, images, cfg.margin_frac, species=photo_species(images, raw_dir))
    summary = {**quality, "box_source": cfg.box_source, "n_photos": len(images), "boxes_clipped": n_clipped}
    atomic_write_json(METRICS_FILE, summary)
    log.info("%s", crop_line(summary))


def crop_line(summary: dict) -> str:
    """The crop summary as one readable line (the per-species numbers stay in metrics/crop.json)."""
    ious = ", ".join(
        f"{key.removeprefix('iou_')} {summary[key]:.3f}"
        for key in sorted(summary)
        if key.startswith("iou_") and isinstance(summary[key], float)
    )
    return (
        f"crops in {OUT_DIR}: {summary['n_photos']} photos, boxes from {summary['box_source']}, "
        f"{summary.get('fallback_share', 0.0):.1%} without a box (whole photo)"
        + (f"; mean IoU vs the true boxes: {ious}" if ious else "")
        + (f"; {summary['boxes_clipped']} boxes clipped" if summary.get("boxes_clipped") else "")
        + f" (per species: {METRICS_FILE})"
    )


if __name__ == "__main__":
    run_stage(main)()
