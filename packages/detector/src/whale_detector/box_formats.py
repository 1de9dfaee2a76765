"""Public box files → the project's `boxes.csv` (image, region, x1, y1, x2, y2, conf in photo pixels).

Formats (`convert_boxes(fmt=...)`):

- `xyxy`: a CSV with image, [region], x1, y1, x2, y2, [conf] in pixels (region from `region=` if absent).
- `detic`: a CSV with image and `box` = "x1 y1 x2 y2" (pixels; empty = no box), optional conf/score — the
  Detic-style files of the Kaggle discussion (e.g. the "whale_dolphin_yolov5"/Detic crops datasets).
- `bremer`: a CSV with image, `bbox` = "[[x1 y1 x2 y2], ...]" and `conf` = "[0.87, ...]" (pixels) — the
  style of the "happywhale-cropped-dataset-yolov5" dataset (one or more boxes per photo, or "[]").
- `yolo`: a folder of `<photo stem>.txt` label files, lines "class cx cy w h [conf]" normalised to the photo;
  the photo sizes come from `images_dirs`, class ids map to regions through `classes`.
- `coco`: a COCO JSON (images with width/height, annotations with bbox [x, y, w, h], category_id, [score]);
  category names that are regions are used, else `region=`.

Every row keeps `where` (file and line) so that `check_boxes` refuses a bad box naming where it came from.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import REGIONS, InputError, image_size, read_table
from whale_detector.boxes import BoxCheck, check_boxes, validate_boxes

FORMATS = ("xyxy", "detic", "bremer", "yolo", "coco")
OUT_COLUMNS = ["image", "region", "x1", "y1", "x2", "y2", "conf"]
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".webp", ".bmp", ".tif", ".tiff")


def _need(table: pd.DataFrame, columns: Sequence[str], path: Path, fmt: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} for --format {fmt}")


def _region_of(table: pd.DataFrame, region: str | None, path: Path) -> pd.Series:
    if "region" in table.columns:
        return table["region"]
    if region is None:
        raise InputError(f"{path}: no 'region' column: pass --region fullbody|backfin for a single-class file")
    return pd.Series(region, index=table.index)


def _numbers(text: str) -> list[float]:
    return [float(v) for v in _NUMBER.findall(text)]


def _from_xyxy(path: Path, region: str | None) -> list[dict]:
    table = read_table(path)
    _need(table, ("image", "x1", "y1", "x2", "y2"), path, "xyxy")
    regions = _region_of(table, region, path)
    conf = table["conf"] if "conf" in table.columns else pd.Series("", index=table.index)
    return [
        {"image": r.image, "region": regions[i], "x1": r.x1, "y1": r.y1, "x2": r.x2, "y2": r.y2,
         "conf": conf[i], "where": f"{path}: line {i + 2}"}
        for i, r in zip(table.index, table.itertuples(index=False))
    ]  # fmt: skip


def _from_box_strings(path: Path, fmt: str, region: str | None) -> list[dict]:
    """detic ("x1 y1 x2 y2" in `box`) and bremer ("[[x1 y1 x2 y2], ...]" in `bbox`, "[c, ...]" in `conf`)."""
    table = read_table(path)
    column = "box" if fmt == "detic" else "bbox"
    _need(table, ("image", column), path, fmt)
    regions = _region_of(table, region, path)
    conf_col = next((c for c in ("conf", "score", "confidence") if c in table.columns), None)
    rows = []
    for i, image, text in zip(table.index, table["image"], table[column]):
        where = f"{path}: line {i + 2}"
        values = _numbers(text)
        if len(values) % 4:
            raise InputError(f"{where}: {column}={text!r} is not a list of x1 y1 x2 y2 boxes")
        confs = _numbers(table[conf_col][i]) if conf_col else []
        n_boxes = len(values) // 4
        if confs and len(confs) != n_boxes:
            raise InputError(
                f"{where}: {n_boxes} boxes but {len(confs)} confidences ({conf_col}={table[conf_col][i]!r})"
            )
        for k in range(n_boxes):
            x1, y1, x2, y2 = values[4 * k : 4 * k + 4]
            conf = confs[k] if confs else ""
            rows.append({"image": image, "region": regions[i], "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                         "conf": conf, "where": where})  # fmt: skip
    return rows


def _find_photo(stem: str, images_dirs: Sequence[Path]) -> Path | None:
    for folder in images_dirs:
        for suffix in _IMAGE_SUFFIXES:
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


def _from_yolo(src: Path, images_dirs: Sequence[Path], classes: Sequence[str]) -> list[dict]:
    if not src.is_dir():
        raise InputError(f"{src}: --format yolo expects a folder of <photo>.txt label files")
    if not images_dirs:
        raise InputError("--format yolo needs --images DIR (the photos' pixel sizes turn normalised boxes to pixels)")
    rows = []
    for label_file in sorted(src.rglob("*.txt")):
        lines = label_file.read_text(encoding="utf-8").splitlines()
        if not any(line.strip() for line in lines):
            continue
        photo = _find_photo(label_file.stem, images_dirs)
        if photo is None:
            raise InputError(f"{label_file}: no photo {label_file.stem}.* in {', '.join(map(str, images_dirs))}")
        width, height = image_size(photo)
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{label_file}: line {n}"
            parts = line.split()
            try:
                cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
                conf = float(parts[5]) if len(parts) > 5 else ""
            except (ValueError, IndexError):
                raise InputError(f"{where}: {line.strip()!r} is not 'class cx cy w h [conf]'") from None
            if not 0 <= cls < len(classes):
                raise InputError(f"{where}: class id {cls} not in --classes {','.join(classes)}")
            rows.append({"image": photo.name, "region": classes[cls], "x1": (cx - w / 2) * width,
                         "y1": (cy - h / 2) * height, "x2": (cx + w / 2) * width, "y2": (cy + h / 2) * height,
                         "conf": conf, "where": where})  # fmt: skip
    return rows


def _from_coco(path: Path, region: str | None) -> list[dict]:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        images = {int(img["id"]): img for img in spec["images"]}
        names = {int(c["id"]): str(c["name"]) for c in spec.get("categories", [])}
        annotations = spec["annotations"]
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a COCO detection file ({type(err).__name__}: {err})") from None
    rows = []
    for n, ann in enumerate(annotations):
        where = f"{path}: annotations[{n}]"
        try:
            image = images[int(ann["image_id"])]
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, ValueError, TypeError):
            raise InputError(f"{where}: needs image_id of a listed image and bbox [x, y, w, h]") from None
        name = names.get(int(ann.get("category_id", -1)), "")
        chosen = name if name in REGIONS else region
        if chosen is None:
            raise InputError(f"{where}: category {name!r} is not a region: pass --region fullbody|backfin")
        rows.append({"image": Path(str(image["file_name"])).name, "region": chosen, "x1": x, "y1": y,
                     "x2": x + w, "y2": y + h, "conf": ann.get("score", ""), "where": where})  # fmt: skip
    return rows


def convert_boxes(
    src: str | os.PathLike[str],
    fmt: str,
    *,
    images_dirs: Sequence[str | os.PathLike[str]] = (),
    classes: Sequence[str] = REGIONS,
    region: str | None = None,
) -> pd.DataFrame:
    """Read a public box file as the project's boxes table, keeping where each box came from.

    Args:
        src: the file (a folder of label files for `yolo`).
        fmt: one of `FORMATS`.
        images_dirs: photo folders (needed by `yolo`; with any format they let `check_boxes` test the edges).
        classes: region of each YOLO class id, in id order.
        region: the region of every box of a single-class file.

    Returns:
        image, region, x1, y1, x2, y2 (float pixels), conf (float, NaN where the file has none), where.

    Raises:
        InputError: an unknown format or region, a missing file, column or photo, or an unreadable row
            (naming the file and line).
    """
    src = Path(src)
    if fmt not in FORMATS:
        raise InputError(f"unknown box format {fmt!r} (known: {', '.join(FORMATS)})")
    for name in (*classes, *([region] if region else [])):
        if name not in REGIONS:
            raise InputError(f"unknown region {name!r} (known: {', '.join(REGIONS)})")
    dirs = [Path(d) for d in images_dirs]
    if fmt == "xyxy":
        rows = _from_xyxy(src, region)
    elif fmt in ("detic", "bremer"):
        rows = _from_box_strings(src, fmt, region)
    elif fmt == "yolo":
        rows = _from_yolo(src, dirs, classes)
    else:
        rows = _from_coco(src, region)
    table = pd.DataFrame(rows, columns=[*OUT_COLUMNS, "where"])
    table["conf"] = pd.to_numeric(table["conf"].replace("", np.nan), errors="coerce")
    return table


def photo_sizes(images: Sequence[str], images_dirs: Sequence[str | os.PathLike[str]]) -> dict[str, tuple[int, int]]:
    """(width, height) of each named photo found in `images_dirs` (the first folder holding it wins)."""
    sizes = {}
    for name in dict.fromkeys(str(i) for i in images):
        path = next((Path(d) / name for d in images_dirs if (Path(d) / name).is_file()), None)
        if path is not None:
            sizes[name] = image_size(path)
    return sizes


def check_converted(
    table: pd.DataFrame, src: str | os.PathLike[str], images_dirs: Sequence[str | os.PathLike[str]] = (),
    min_side_px: float = 4.0,
) -> tuple[pd.DataFrame, BoxCheck]:  # fmt: skip
    """Every box of a `convert_boxes` table checked (`validate_boxes` + `check_boxes` against the photos found).

    Returns:
        The `boxes.csv` table (image, region, x1, y1, x2, y2, conf) and what the check clipped.

    Raises:
        InputError: no boxes at all, or the first bad box (naming `src` and its line).
    """
    if table.empty:
        raise InputError(f"{src}: no boxes found")
    table = validate_boxes(table, str(src))
    sizes = photo_sizes(table["image"], images_dirs) if images_dirs else None
    table, report = check_boxes(table, sizes, str(src), min_side_px=min_side_px)
    return table[OUT_COLUMNS].reset_index(drop=True), report
