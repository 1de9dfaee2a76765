"""Box tables: validation of `boxes.csv`, clipping, margins and IoU (photo sizes: `whale_core.image_size`).

A boxes table has columns image, region, x1, y1, x2, y2 (pixels of the upright photo, x right, y down,
x2/y2 exclusive edges) and optionally conf.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from whale_core import REGIONS, InputError

BOX_COLUMNS = ("image", "region", "x1", "y1", "x2", "y2")


def line_of(boxes: pd.DataFrame, position: int, source: str) -> str:
    """Where row `position` came from: its `where` column (file and line, set by the converters) or, for a
    table read from the CSV `source` with a header, `source: line <index + 2>` (the index label survives
    filtering, so it is still the line of the file)."""
    if "where" in boxes.columns:
        return str(boxes["where"].iloc[position])
    label = boxes.index[position]
    return f"{source}: line {int(label) + 2}" if isinstance(label, (int, np.integer)) else f"{source}: row {label!r}"


def _shown(value: object) -> str:
    """A cell as a user wrote it: plain text, never `np.float64(nan)`."""
    if isinstance(value, (float, np.floating)):
        return "empty" if np.isnan(value) else f"{float(value):g}"
    return repr(str(value))


def validate_boxes(boxes: pd.DataFrame, source: str = "boxes table") -> pd.DataFrame:
    """Check columns, regions and coordinates of a boxes table; return it with float coordinates.

    Raises:
        InputError: a missing column, an unknown region or a non-numeric coordinate, naming the source and the
            CSV line (see `line_of`).
    """
    missing = [c for c in BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)} (expected {', '.join(BOX_COLUMNS)})")
    out = boxes.copy()
    bad_region = ~out["region"].isin(REGIONS)
    if bad_region.any():
        pos = int(np.flatnonzero(bad_region.to_numpy())[0])
        raise InputError(
            f"{line_of(out, pos, source)}: unknown region {_shown(out['region'].iloc[pos])} "
            f"(expected one of {', '.join(REGIONS)})"
        )
    for col in ("x1", "y1", "x2", "y2"):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{line_of(out, pos, source)}: {col}={_shown(out[col].iloc[pos])} is not a finite number")
        out[col] = values.astype(float)
    return out


#: A box may overshoot the photo by this share of its side (at least `CLIP_TOLERANCE_MIN_PX`) and is clipped;
#: further out, it is refused (it belongs to another photo size: a resized copy, a wrong file).
CLIP_TOLERANCE_FRAC = 0.02
CLIP_TOLERANCE_MIN_PX = 2.0
#: Boxes whose corners are all below this are normalised coordinates given as pixels.
NORMALISED_MAX = 1.5


@dataclasses.dataclass(frozen=True)
class BoxCheck:
    """What `check_boxes` did: boxes clipped into the photo and (with `drop`) boxes dropped."""

    n_clipped: int = 0
    n_dropped: int = 0


def check_boxes(
    boxes: pd.DataFrame,
    sizes: dict[str, tuple[int, int]] | None,
    source: str,
    *,
    min_side_px: float,
    drop: bool = False,
) -> tuple[pd.DataFrame, BoxCheck]:
    """The geometry every box source must pass: x2 > x1, y2 > y1, inside the photo, at least `min_side_px`.

    Corners all at most 1.5 are normalised coordinates given as pixels (refused with a hint). A box past the
    photo's edge by at most `CLIP_TOLERANCE_FRAC` of the side is clipped (counted); further out it is refused.

    Args:
        boxes: a `validate_boxes` table (float coordinates).
        sizes: (width, height) per image, as `load_rgb` returns the photo; None or a missing image skips the
            edge check for those rows (the crop stage checks them against the photos).
        source: the file named in messages.
        min_side_px: the smallest width and height a (clipped) box may have.
        drop: drop bad boxes and count them (detector output) instead of refusing the table.

    Raises:
        InputError: the first bad box, naming the source, its line and the image (not with `drop`).
    """
    out = boxes.copy()
    xyxy = out[["x1", "y1", "x2", "y2"]].to_numpy(float)
    sizes = sizes or {}
    wh = np.array([sizes.get(str(name), (np.inf, np.inf)) for name in out["image"]], dtype=float).reshape(-1, 2)
    tol = np.maximum(CLIP_TOLERANCE_MIN_PX, CLIP_TOLERANCE_FRAC * wh)
    problems = [
        (xyxy.max(axis=1) <= NORMALISED_MAX, "all corners <= 1.5 look like normalised coordinates given as pixels "
         "(convert them: `whale-reid boxes convert SRC --format yolo|coco --images DIR`, or multiply by the size)"),
        (xyxy[:, 2] <= xyxy[:, 0], "x2 <= x1 (expected x1,y1 top-left and x2,y2 bottom-right in pixels)"),
        (xyxy[:, 3] <= xyxy[:, 1], "y2 <= y1 (expected x1,y1 top-left and x2,y2 bottom-right in pixels)"),
        ((xyxy[:, :2] < -tol).any(axis=1) | (xyxy[:, 2:] > wh + tol).any(axis=1), "outside the photo"),
    ]  # fmt: skip
    clipped = np.concatenate([xyxy[:, :2].clip(min=0.0), np.minimum(xyxy[:, 2:], wh)], axis=1)
    side = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1])
    problems.append((side < min_side_px, f"smaller than the minimum of {min_side_px:g} px"))
    bad = np.zeros(len(out), dtype=bool)
    for mask, reason in problems:
        mask = mask & ~bad
        if mask.any() and not drop:
            pos = int(np.flatnonzero(mask)[0])
            size = "" if np.isinf(wh[pos, 0]) else f" of a {int(wh[pos, 0])}x{int(wh[pos, 1])} photo"
            corners = ",".join(f"{v:g}" for v in xyxy[pos])
            raise InputError(
                f"{line_of(out, pos, source)}: box {corners} (image {out['image'].iloc[pos]!r}{size}): {reason}"
            )
        bad |= mask
    n_clipped = int((np.abs(clipped - xyxy) > 0).any(axis=1)[~bad].sum())
    out[["x1", "y1", "x2", "y2"]] = clipped
    return out[~bad], BoxCheck(n_clipped=n_clipped, n_dropped=int(bad.sum()))


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
