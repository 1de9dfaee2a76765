"""Cut the fullbody/backfin crops of every photo, falling back to the whole photo when there is no box."""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from whale_core import REGIONS, InputError, atomic_path, image_size, load_rgb
from whale_detector.boxes import check_boxes, expand_boxes, validate_boxes
from whale_detector.config import CropConfig

log = logging.getLogger(__name__)

CROP_COLUMNS = ["image", "split", "region", "x1", "y1", "x2", "y2", "conf", "source", "crop"]


def crop_file(region: str, split: str, image: str) -> str:
    """Crop path relative to the crops folder: `<region>/<split>/<image with a .jpg suffix>`."""
    return str(Path(region) / split / Path(image).with_suffix(".jpg"))


def box_to_pixels(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Integer crop rectangle (left, top, right, bottom) covering a float box, clipped to the photo, >= 1 px."""
    left = min(max(int(math.floor(box[0])), 0), width - 1)
    top = min(max(int(math.floor(box[1])), 0), height - 1)
    right = max(min(int(math.ceil(box[2])), width), left + 1)
    bottom = max(min(int(math.ceil(box[3])), height), top + 1)
    return left, top, right, bottom


def fit_max_side(width: int, height: int, max_side_px: int) -> tuple[int, int]:
    """Size after shrinking (never enlarging) so that the longer side is at most `max_side_px`; aspect kept."""
    scale = min(1.0, max_side_px / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def given_boxes(boxes: pd.DataFrame, images: pd.DataFrame, cfg: CropConfig, source: str = "boxes_csv") -> pd.DataFrame:
    """Boxes supplied by the user, made like `detect_boxes` output (best per photo/region, margin, clipped).

    Every row is checked before anything is cut (`validate_boxes`, then `check_boxes` against the photo sizes
    of the images it names): the first bad box is refused naming the file and its line. Boxes slightly past
    the edge are clipped; their number is in `result.attrs["n_clipped"]`. Rows with a `conf` column below
    `cfg.conf_threshold` are dropped; without `conf` every box counts (conf is left empty). Photos of
    `images` (image, path) only.

    Raises:
        InputError: malformed table or box (naming file and line) or an unreadable photo.
    """
    boxes = validate_boxes(boxes, source)
    paths = dict(zip(images["image"].astype(str), images["path"]))
    names = boxes["image"].astype(str)
    sizes = {name: image_size(paths[name]) for name in dict.fromkeys(names[names.isin(paths)])}
    boxes, report = check_boxes(boxes, sizes, source, min_side_px=cfg.min_box_px)
    if report.n_clipped:
        log.info("%s: %d boxes reached past the photo's edge (within tolerance) and were clipped", source,
                 report.n_clipped)  # fmt: skip
    boxes = boxes[boxes["image"].astype(str).isin(paths)].copy()
    if "conf" in boxes.columns:
        boxes["conf"] = pd.to_numeric(boxes["conf"], errors="coerce")
        boxes = boxes[boxes["conf"].isna() | (boxes["conf"] >= cfg.conf_threshold)]
    else:
        boxes["conf"] = np.nan
    boxes = boxes.sort_values("conf", ascending=False, na_position="last", kind="stable")
    boxes = boxes.drop_duplicates(["image", "region"]).copy()
    for idx, row in boxes.iterrows():
        width, height = sizes[str(row["image"])]
        xyxy = row[["x1", "y1", "x2", "y2"]].to_numpy(float)[None, :]
        boxes.loc[idx, ["x1", "y1", "x2", "y2"]] = expand_boxes(xyxy, cfg.margin_frac, width, height)[0]
    boxes["source"] = "boxes_csv"
    out = boxes[["image", "region", "x1", "y1", "x2", "y2", "conf", "source"]].reset_index(drop=True)
    out.attrs["n_clipped"] = report.n_clipped
    return out


def _crop_one(photo: dict, found: dict[str, pd.Series], out_dir: Path, cfg: CropConfig) -> list[dict]:
    """Crop both regions of one photo (decoded once); each falls back to the whole photo without a box."""
    img = load_rgb(photo["path"])
    width, height = img.size
    rows = []
    for region in REGIONS:
        box = found.get(region)
        if box is None:
            rect, conf, source = (0, 0, width, height), math.nan, "full_image"
        else:
            rect = box_to_pixels(tuple(box[["x1", "y1", "x2", "y2"]].astype(float)), width, height)
            conf, source = float(box["conf"]), str(box.get("source", "detector"))
        crop = img.crop(rect)
        if max(crop.size) > cfg.max_side_px:
            crop = crop.resize(fit_max_side(*crop.size, cfg.max_side_px), Image.Resampling.BILINEAR, reducing_gap=2.0)
        rel = crop_file(region, photo["split"], photo["image"])
        with atomic_path(out_dir / rel) as tmp:
            crop.save(tmp, format="JPEG", quality=cfg.jpeg_quality)
        rows.append(dict(zip(CROP_COLUMNS, (photo["image"], photo["split"], region, *rect, conf, source, rel))))
    return rows


def crop_regions(
    images: pd.DataFrame, boxes: pd.DataFrame, out_dir: str | os.PathLike[str], cfg: CropConfig
) -> pd.DataFrame:
    """Write `<out_dir>/<region>/<split>/<image>.jpg` for every photo and region.

    A photo/region without a box (nothing above the threshold) gets the whole photo, `source=full_image`.
    Crops keep their aspect ratio and are shrunk to at most `cfg.max_side_px` on the longer side. Photos are
    decoded with `whale_core.load_rgb` by `cfg.workers` threads; every file is written atomically.

    Args:
        images: image, split, path — one row per photo.
        boxes: image, region, x1, y1, x2, y2, conf[, source] in photo pixels (`detect_boxes` or `given_boxes`
            output); the most confident row per photo and region is used.

    Returns:
        The `boxes.csv` table: image, split, region, x1, y1, x2, y2 (the integer pixel rectangle cropped),
        conf (empty for full_image and conf-less given boxes), source (`detector`, `boxes_csv` or
        `full_image`), crop (the file relative to `out_dir`).

    Raises:
        InputError: a missing column, or a missing/corrupt photo (naming it).
    """
    missing = [c for c in ("image", "split", "path") if c not in images.columns]
    if missing:
        raise InputError(f"images table: missing column(s) {', '.join(missing)} (expected image, split, path)")
    out_dir = Path(out_dir)
    ranked = boxes.sort_values("conf", ascending=False, na_position="last", kind="stable")
    found: dict[str, dict[str, pd.Series]] = {}
    for _, row in ranked.iterrows():
        found.setdefault(str(row["image"]), {}).setdefault(str(row["region"]), row)
    photos = images.to_dict("records")  # not iterrows: its row Series cannot hold a path that is not UTF-8
    with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        jobs = pool.map(lambda p: _crop_one(p, found.get(str(p["image"]), {}), out_dir, cfg), photos)
        rows = [r for rs in tqdm(jobs, total=len(photos), desc="crop", unit="photo", disable=None) for r in rs]
    table = pd.DataFrame(rows, columns=CROP_COLUMNS)
    fallback = float((table["source"] == "full_image").mean()) if len(table) else 0.0
    log.info(
        "cropped %d photos into %s (%.1f%% regions fell back to the whole photo)", len(photos), out_dir, 100 * fallback
    )
    return table
