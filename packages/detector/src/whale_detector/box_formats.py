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
Nothing is guessed: a token that is not a finite number (`nan`, `inf`, a word), an id or class that is not an
integer, an image id used twice, and (with photo folders given) a box of a photo not there are refused. A
photo is named by its path relative to its folder (COCO `file_name`, the YOLO label file's sub-folders), so
`card1/IMG_0001.jpg` and `card2/IMG_0001.jpg` never share a box.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import REGIONS, InputError, image_size, read_table
from whale_detector.boxes import BoxCheck, check_boxes, line_of, validate_boxes

FORMATS = ("xyxy", "detic", "bremer", "yolo", "coco")
OUT_COLUMNS = ["image", "region", "x1", "y1", "x2", "y2", "conf"]
_SEPARATORS = re.compile(r"[\s,;\[\]()]+")
_FILE_SUFFIX = {"xyxy": ".csv", "detic": ".csv", "bremer": ".csv", "coco": ".json"}
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


def _numbers(text: str, where: str, column: str) -> list[float]:
    """The numbers of a box or confidence list ("x1 y1 x2 y2", "[[x1, y1, x2, y2], ...]"); every token must be
    a finite number (`nan`, `inf` or a word is refused, not skipped)."""
    values = []
    for token in filter(None, _SEPARATORS.split(text)):
        value = _finite(token)
        if value is None:
            raise InputError(f"{where}: {column}={text!r}: {token!r} is not a finite number")
        values.append(value)
    return values


def _finite(token: object) -> float | None:
    """`token` as a finite float, else None (bools, `nan`, `inf` and words are not numbers here)."""
    if isinstance(token, bool):
        return None
    try:
        value = float(token)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _integer(value: object) -> int | None:
    """`value` as an int when it is one (1, "1"), else None (1.9, "fullbody", true)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+", value.strip()):
        return int(value)
    return None


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
        values = _numbers(text, where, column)
        if len(values) % 4:
            raise InputError(f"{where}: {column}={text!r} is not a list of x1 y1 x2 y2 boxes")
        confs = _numbers(table[conf_col][i], where, conf_col) if conf_col else []
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


def _find_photo(relative_stem: str, images_dirs: Sequence[Path]) -> tuple[Path, str] | None:
    """The photo `<dir>/<relative_stem>.<suffix>` of the first folder holding one, and its name relative to it."""
    for folder in images_dirs:
        for suffix in _IMAGE_SUFFIXES:
            name = f"{relative_stem}{suffix}"
            if (folder / name).is_file():
                return folder / name, name
    return None


def _from_yolo(src: Path, images_dirs: Sequence[Path], classes: Sequence[str]) -> list[dict]:
    """Label files `<src>/<sub/folders>/<stem>.txt` → boxes of the photo `<images dir>/<sub/folders>/<stem>.*`,
    named by that relative path (two photos of one base name in two folders keep their own boxes)."""
    if not src.is_dir():
        raise InputError(f"{src}: --format yolo expects a folder of <photo>.txt label files")
    if not images_dirs:
        raise InputError("--format yolo needs --images DIR (the photos' pixel sizes turn normalised boxes to pixels)")
    rows = []
    for label_file in sorted(src.rglob("*.txt")):
        try:
            lines = label_file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise InputError(f"{label_file}: not a UTF-8 YOLO label file (byte {err.start}: {err.reason})") from None
        if not any(line.strip() for line in lines):
            continue
        relative_stem = label_file.relative_to(src).with_suffix("").as_posix()
        found = _find_photo(relative_stem, images_dirs)
        if found is None:
            raise InputError(f"{label_file}: no photo {relative_stem}.* in {', '.join(map(str, images_dirs))}")
        width, height = image_size(found[0])
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{label_file}: line {n}"
            parts = line.split()
            cls, numbers = _integer(parts[0]), [_finite(v) for v in parts[1:6]]
            if cls is None or len(parts) not in (5, 6) or None in numbers:
                raise InputError(
                    f"{where}: {line.strip()!r} is not 'class cx cy w h [conf]' (integer class, finite numbers)"
                )
            if not 0 <= cls < len(classes):
                raise InputError(f"{where}: class id {cls} not in --classes {','.join(classes)}")
            cx, cy, w, h = numbers[:4]
            rows.append(
                {
                    "image": found[1],
                    "region": classes[cls],
                    "x1": (cx - w / 2) * width,
                    "y1": (cy - h / 2) * height,
                    "x2": (cx + w / 2) * width,
                    "y2": (cy + h / 2) * height,
                    "conf": numbers[4] if len(numbers) > 4 else "",
                    "where": where,
                }
            )
    return rows


def _coco_index(path: Path, entries: list, what: str) -> dict[int, dict]:
    """`images` or `categories` by their integer `id`; a non-integer or repeated id is refused."""
    index: dict[int, dict] = {}
    for n, entry in enumerate(entries):
        key = _integer(entry.get("id")) if isinstance(entry, dict) else None
        if key is None:
            raise InputError(
                f"{path}: {what}[{n}]: id {entry.get('id') if isinstance(entry, dict) else entry!r} is not an integer"
            )
        if key in index:
            raise InputError(f"{path}: {what}[{n}]: id {key} is used twice")
        index[key] = entry
    return index


def _from_coco(path: Path, region: str | None) -> list[dict]:
    """A COCO file's boxes, named by the image's `file_name` as written (relative path kept, `\\` → `/`)."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        images = _coco_index(path, spec["images"], "images")
        names = {
            key: str(c.get("name", ""))
            for key, c in _coco_index(path, spec.get("categories", []), "categories").items()
        }
        annotations = spec["annotations"]
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{path}: not a COCO detection file ({type(err).__name__}: {err})") from None
    rows = []
    for n, ann in enumerate(annotations):
        where = f"{path}: annotations[{n}]"
        if not isinstance(ann, dict):
            raise InputError(f"{where}: not an object")
        image_id, bbox = _integer(ann.get("image_id")), ann.get("bbox")
        if image_id not in images:
            raise InputError(f"{where}: image_id {ann.get('image_id')!r} is not the integer id of a listed image")
        numbers = [_finite(v) for v in bbox] if isinstance(bbox, list) else []
        if len(numbers) != 4 or None in numbers:
            raise InputError(f"{where}: bbox {bbox!r} is not [x, y, w, h] of finite numbers")
        category = _integer(ann.get("category_id", -1))
        if category is None:
            raise InputError(f"{where}: category_id {ann.get('category_id')!r} is not an integer")
        score = ann.get("score", "")
        if score != "" and _finite(score) is None:
            raise InputError(f"{where}: score {score!r} is not a finite number")
        name = names.get(category, "")
        chosen = name if name in REGIONS else region
        if chosen is None:
            raise InputError(f"{where}: category {name!r} is not a region: pass --region fullbody|backfin")
        x, y, w, h = numbers
        file_name = str(images[image_id].get("file_name", "")).replace("\\", "/")
        rows.append(
            {
                "image": file_name,
                "region": chosen,
                "x1": x,
                "y1": y,
                "x2": x + w,
                "y2": y + h,
                "conf": score,
                "where": where,
            }
        )
    return rows


def box_files(sources: Sequence[str | os.PathLike[str]], fmt: str) -> list[Path]:
    """The box files of `sources`: each a file, or a folder whose files of the format (`*.csv`; `*.json` for
    coco) are taken in name order. With `yolo` each source is itself a folder of label files.

    Raises:
        InputError: a source that does not exist, or a folder with no such file.
    """
    files: list[Path] = []
    for source in map(Path, sources):
        if fmt == "yolo" or source.is_file():
            files.append(source)
        elif source.is_dir():
            found = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() == _FILE_SUFFIX[fmt])
            if not found:
                raise InputError(f"{source}: no *{_FILE_SUFFIX[fmt]} box files in this folder (--format {fmt})")
            files.extend(found)
        else:
            raise InputError(f"{source}: no such box file or folder")
    return files


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
    conf = table["conf"].map(lambda v: np.nan if isinstance(v, str) and not v.strip() else _finite(v))
    bad = np.flatnonzero((conf.isna() & ~table["conf"].map(lambda v: isinstance(v, str) and not v.strip())).to_numpy())
    if len(bad):
        raise InputError(f"{table['where'].iloc[bad[0]]}: conf={table['conf'].iloc[bad[0]]!r} is not a finite number")
    table["conf"] = conf.astype(float)
    return table


def photo_sizes(images: Sequence[str], images_dirs: Sequence[str | os.PathLike[str]]) -> dict[str, tuple[int, int]]:
    """(width, height) of each named photo found in `images_dirs` (the first folder holding it wins); a name is
    the photo's path relative to the folder, never only its base name."""
    sizes = {}
    for name in dict.fromkeys(str(i) for i in images):
        if not name.strip() or Path(name).is_absolute() or ".." in Path(name).parts:
            continue  # not a photo inside a folder: reported missing
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

    With `images_dirs`, every box's photo must be in one of them (at the image name: a path relative to the
    folder, so `card1/IMG_1.jpg` and `card2/IMG_1.jpg` are two photos).

    Raises:
        InputError: no boxes at all, a `min_side_px` that is not a finite number ≥ 0, an empty image name, a
            photo not found in `images_dirs`, or the first bad box (naming `src` and its line).
    """
    if not (math.isfinite(min_side_px) and min_side_px >= 0):
        raise InputError(f"--min-box-px {min_side_px}: not a finite number >= 0")
    if table.empty:
        raise InputError(f"{src}: no boxes found")
    table = validate_boxes(table, str(src))
    unnamed = np.flatnonzero((table["image"].astype(str).str.strip() == "").to_numpy())
    if len(unnamed):
        raise InputError(f"{line_of(table, int(unnamed[0]), str(src))}: empty image name")
    sizes = photo_sizes(table["image"], images_dirs) if images_dirs else None
    if sizes is not None:
        absent = np.flatnonzero(~table["image"].astype(str).isin(sizes).to_numpy())
        if len(absent):
            pos = int(absent[0])
            raise InputError(
                f"{line_of(table, pos, str(src))}: photo {table['image'].iloc[pos]!r} is not in "
                f"{', '.join(map(str, images_dirs))}"
            )
    table, report = check_boxes(table, sizes, str(src), min_side_px=min_side_px)
    return table[OUT_COLUMNS].reset_index(drop=True), report
