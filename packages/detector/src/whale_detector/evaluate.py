"""How well the crops match true boxes: fallback share and IoU per region."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from whale_core import REGIONS, image_size
from whale_detector.boxes import box_iou, expand_boxes, validate_boxes
from whale_detector.crop import box_to_pixels


def crop_quality(
    crops: pd.DataFrame,
    true_boxes: pd.DataFrame,
    images: pd.DataFrame,
    margin_frac: float,
    species: Mapping[str, str] | None = None,
) -> dict[str, float | int | dict | None]:
    """Fallback share and mean IoU of the cropped rectangles against the true boxes.

    The true box is turned into the crop it would have given (grown by `margin_frac`, clipped, rounded to
    pixels exactly as the cropper does), so a perfect detector scores IoU 1 whatever the margin. Whole-photo
    fallbacks count with their (low) IoU.

    Args:
        crops: `crop_regions` output (image, region, x1, y1, x2, y2, source).
        true_boxes: image, region, x1, y1, x2, y2 — only photos present here are scored.
        images: image, path — for the photo sizes.
        species: optional species of each image; adds the same numbers per species under `by_species`
            (photos without a species are left out of it).

    Returns:
        `fallback_share` (all crops), `fallback_share_<region>`, and for photos with true boxes
        `iou_<region>` (None if none) and `n_iou_<region>`; with `species`, `by_species[<species>]`
        holding `fallback_share_<region>` and `iou_<region>` / `n_iou_<region>` of that species' photos.
    """
    out = _quality(crops, true_boxes, images, margin_frac)
    if species:
        named = crops["image"].astype(str).map(species)
        out["by_species"] = {}
        for name in sorted(named.dropna().unique()):
            numbers = _quality(crops[named == name], true_boxes, images, margin_frac)
            out["by_species"][name] = {k: v for k, v in numbers.items() if k != "fallback_share"}
    return out


def _quality(
    crops: pd.DataFrame, true_boxes: pd.DataFrame, images: pd.DataFrame, margin_frac: float
) -> dict[str, float | int | None]:
    """`crop_quality` of one set of crops."""
    out: dict[str, float | int | None] = {"fallback_share": float((crops["source"] == "full_image").mean())}
    true_boxes = validate_boxes(true_boxes, "true boxes")
    paths = dict(zip(images["image"].astype(str), images["path"]))
    for region in REGIONS:
        mine = crops[crops["region"] == region]
        out[f"fallback_share_{region}"] = float((mine["source"] == "full_image").mean()) if len(mine) else 0.0
        truth = true_boxes[(true_boxes["region"] == region) & true_boxes["image"].isin(mine["image"])]
        truth = truth.drop_duplicates("image").set_index("image")
        if truth.empty:
            out[f"iou_{region}"], out[f"n_iou_{region}"] = None, 0
            continue
        got = mine.set_index("image").loc[truth.index, ["x1", "y1", "x2", "y2"]].to_numpy(float)
        expected = []
        for name, row in truth.iterrows():
            width, height = image_size(paths[name])
            grown = expand_boxes(row[["x1", "y1", "x2", "y2"]].to_numpy(float)[None, :], margin_frac, width, height)
            expected.append(box_to_pixels(tuple(grown[0]), width, height))
        out[f"iou_{region}"] = float(np.mean(box_iou(got, np.array(expected, float))))
        out[f"n_iou_{region}"] = len(truth)
    return out
