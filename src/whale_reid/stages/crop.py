"""The `crop` stage's work: boxes for every train and test photo (detected or given), the crops, their quality.

Every box is checked before any crop is written: a bad line fails the stage with the old crops intact. The
quality numbers: the share of photos without a box (cropped whole) and the mean IoU against the true boxes
of `<raw_dir>/boxes.csv` for the test photos it covers, both per species where species are known, and the
fallback share per split and region (a warning above 5 %, unless `crop.box_source: none` asks for whole photos).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from whale_core import InputError, read_table, resolve_image_path
from whale_detector import CropConfig, crop_quality, crop_regions, detect_boxes, given_boxes
from whale_detector.boxes import BOX_COLUMNS, validate_boxes

log = logging.getLogger(__name__)

#: Above this share of whole-photo crops in a split and region, the crop stage warns (`box_source: none` aside).
FALLBACK_WARN_SHARE = 0.05


@dataclass(frozen=True)
class CropPaths:
    """What `crop` reads and writes.

    Attributes:
        prepared: the prepared tables (`train.csv`, `test.csv`, column image).
        raw_dir: the photos (`{train,test}_images/`), and the true boxes / hidden labels where the data has them.
        box_input: the detector's folder (`best.pt`) or, with `crop.box_source: boxes_csv`, the given boxes file
            (not read with `box_source: none`).
        out: the crops folder (`<region>/<split>/<image>.jpg`).
    """

    prepared: Path
    raw_dir: Path
    box_input: Path
    out: Path


def read_images(prepared: Path, raw_dir: Path) -> pd.DataFrame:
    """image, split, path (and species where the prepared table has it) of every train and test photo.

    A photo is `<raw_dir>/<photo>` where the table has a `photo` column (a catalogue's path relative to
    `raw_dir`), else `<raw_dir>/<split>_images/<image>` (the Kaggle layout).
    """
    frames = []
    for split in ("train", "test"):
        csv = prepared / f"{split}.csv"
        table = read_table(csv)
        if "image" not in table.columns:
            raise InputError(f"{csv}: missing column 'image'")
        if "photo" in table.columns:
            paths = [resolve_image_path(raw_dir, name) for name in table["photo"]]
        else:
            paths = [resolve_image_path(raw_dir / f"{split}_images", name) for name in table["image"]]
        species = table["species"] if "species" in table.columns else None
        frames.append(pd.DataFrame({"image": table["image"], "split": split, "path": paths, "species": species}))
    return pd.concat(frames, ignore_index=True)


def photo_species(images: pd.DataFrame, raw_dir: Path) -> dict[str, str]:
    """Species of the photos as the prepared tables give them, completed (test photos) by
    `<raw_dir>/test_labels.csv` where the data has one (the demo's hidden truth): for the per-species crop
    numbers only."""
    known = images.dropna(subset=["species"])
    species = dict(zip(known["image"], known["species"]))
    hidden = raw_dir / "test_labels.csv"
    table = read_table(hidden) if hidden.is_file() else pd.DataFrame()
    if {"image", "species"} <= set(table.columns):
        species = dict(zip(table["image"], table["species"])) | species
    return species


def crop_photos(cfg: CropConfig, paths: CropPaths) -> tuple[pd.DataFrame, dict]:
    """Cut every photo's crops into `paths.out`; return the boxes table (`boxes.csv`) and the quality summary."""
    images = read_images(paths.prepared, paths.raw_dir)
    true_csv = paths.raw_dir / "boxes.csv"  # true boxes: the demo has them for test photos too
    truth = read_table(true_csv) if true_csv.is_file() else pd.DataFrame(columns=list(BOX_COLUMNS))
    truth = validate_boxes(truth, str(true_csv))
    truth = truth[truth["image"].isin(set(images.loc[images["split"] == "test", "image"]))]
    n_clipped = 0
    if cfg.box_source == "detector":
        boxes = detect_boxes(paths.box_input / "best.pt", images["path"].tolist(), cfg, names=images["image"].tolist())
    elif cfg.box_source == "boxes_csv":
        given = read_table(paths.box_input)
        warn_unmatched(given, images, paths.box_input)
        boxes = given_boxes(given, images, cfg, source=str(paths.box_input))
        n_clipped = int(boxes.attrs.get("n_clipped", 0))
    else:  # none: every crop is the whole photo
        boxes = pd.DataFrame(columns=[*BOX_COLUMNS, "conf"])
    table = crop_regions(images, boxes, paths.out, cfg)
    quality = crop_quality(table, truth, images, cfg.margin_frac, species=photo_species(images, paths.raw_dir))
    by_split = fallback_shares(table)
    if cfg.box_source != "none":
        warn_fallbacks(by_split, cfg.box_source)
    return table, {
        **quality,
        **by_split,
        "box_source": cfg.box_source,
        "n_photos": len(images),
        "boxes_clipped": n_clipped,
    }


def warn_unmatched(boxes: pd.DataFrame, images: pd.DataFrame, source: Path) -> None:
    """Warn about given boxes that name no photo: boxes are matched by the exact image name of the prepared
    tables (a catalogue's photo path relative to `raw_dir`, with its folders), never by a base name."""
    if "image" not in boxes.columns:
        return  # validate_boxes names the missing column
    unmatched = boxes.loc[~boxes["image"].isin(set(images["image"])), "image"]
    if len(unmatched):
        log.warning(
            "%s: %d boxes name no photo of the prepared tables (e.g. %r; a photo is named as in the "
            "prepared tables' image column, e.g. %r) and are ignored",
            source,
            len(unmatched),
            unmatched.iloc[0],
            images["image"].iloc[0] if len(images) else "",
        )


def fallback_shares(table: pd.DataFrame) -> dict[str, float]:
    """`fallback_share_<split>_<region>`: the share of that split's crops of that region cut from the whole photo."""
    shares = {}
    for (split, region), crops in table.groupby(["split", "region"], sort=True):
        shares[f"fallback_share_{split}_{region}"] = float((crops["source"] == "full_image").mean())
    return shares


def warn_fallbacks(shares: dict[str, float], box_source: str) -> None:
    """A warning for each split and region where more than `FALLBACK_WARN_SHARE` of the crops had no box."""
    for key, share in shares.items():
        if share > FALLBACK_WARN_SHARE:
            split, region = key.removeprefix("fallback_share_").split("_", 1)
            log.warning(
                "%.1f%% of the %s %s crops had no box from %s and are the whole photo (above %.0f%%: "
                "check the boxes' image names, or the detector's metrics)",
                100 * share,
                split,
                region,
                box_source,
                100 * FALLBACK_WARN_SHARE,
            )


def crop_line(summary: dict, out: Path, metrics: Path) -> str:
    """The crop summary as one readable line (the per-species numbers stay in the metrics file)."""
    ious = ", ".join(
        f"{key.removeprefix('iou_')} {summary[key]:.3f}"
        for key in sorted(summary)
        if key.startswith("iou_") and isinstance(summary[key], float)
    )
    return (
        f"crops in {out}: {summary['n_photos']} photos, boxes from {summary['box_source']}, "
        f"{summary.get('fallback_share', 0.0):.1%} without a box (whole photo)"
        + (f"; mean IoU vs the true boxes: {ious}" if ious else "")
        + (f"; {summary['boxes_clipped']} boxes clipped" if summary.get("boxes_clipped") else "")
        + f" (per species: {metrics})"
    )
