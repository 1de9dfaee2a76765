"""Box tables: validation of `boxes.csv`, clipping, margins, IoU, and photo sizes read from headers.

A boxes table has columns image, region, x1, y1, x2, y2 (pixels of the upright photo, x right, y down,
x2/y2 exclusive edges) and optionally conf.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from whale_core import InputError
from whale_detector.config import REGIONS

BOX_COLUMNS = ("image", "region", "x1", "y1", "x2", "y2")
_EXIF_ORIENTATION = 274
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def validate_boxes(boxes: pd.DataFrame, source: str = "boxes table") -> pd.DataFrame:
    """Check columns, regions and coordinates of a boxes table; return it with float coordinates.

    Raises:
        InputError: a missing column, an unknown region or a non-numeric coordinate, naming the row
            (0-based data row, i.e. line row+2 of a CSV with a header).
    """
    missing = [c for c in BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)} (expected {', '.join(BOX_COLUMNS)})")
    out = boxes.copy()
    bad_region = ~out["region"].isin(REGIONS)
    if bad_region.any():
        row = int(np.flatnonzero(bad_region.to_numpy())[0])
        raise InputError(f"{source}: row {row}: unknown region {out['region'].iloc[row]!r} (expected one of {REGIONS})")
    for col in ("x1", "y1", "x2", "y2"):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{source}: row {row}: {col}={out[col].iloc[row]!r} is not a finite number")
        out[col] = values.astype(float)
    return out


def photo_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) of a photo as `load_rgb` will return it (EXIF rotation applied), reading the header only.

    Raises:
        InputError: missing or unreadable file, naming it.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{path}: not a readable image ({err})") from None
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)


def clip_boxes(xyxy: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clip (n, 4) x1,y1,x2,y2 boxes to a width x height photo."""
    out = np.asarray(xyxy, dtype=float).copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0.0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0.0, height)
    return out


def expand_boxes(xyxy: np.ndarray, margin_frac: float, width: float, height: float) -> np.ndarray:
    """Grow (n, 4) boxes by `margin_frac` of their own width/height on each side, then clip to the photo."""
    out = np.asarray(xyxy, dtype=float).copy()
    dx = (out[:, 2] - out[:, 0]) * margin_frac
    dy = (out[:, 3] - out[:, 1]) * margin_frac
    out += np.stack([-dx, -dy, dx, dy], axis=1)
    return clip_boxes(out, width, height)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (n, 4) x1,y1,x2,y2 arrays (0 where the union is empty)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    iw = (np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])).clip(min=0)
    ih = (np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])).clip(min=0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]).clip(min=0) * (a[:, 3] - a[:, 1]).clip(min=0)
    area_b = (b[:, 2] - b[:, 0]).clip(min=0) * (b[:, 3] - b[:, 1]).clip(min=0)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
