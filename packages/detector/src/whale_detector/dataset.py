"""Write an ultralytics detection dataset (data.yaml, symlinked images, normalised labels) from a boxes table."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from whale_core import REGIONS, InputError, atomic_write_text, image_size, resolve_image_path
from whale_detector.boxes import clip_boxes, validate_boxes

log = logging.getLogger(__name__)

#: A clipped box narrower or lower than this (pixels) is degenerate.
MIN_BOX_SIDE_PX = 1.0


@dataclass(frozen=True)
class YoloDataset:
    """What `write_yolo_dataset` wrote: the data.yaml to train on and the images of each split."""

    data_yaml: Path
    train_images: tuple[str, ...]
    val_images: tuple[str, ...]


def split_images(images: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic train/val split by image name: a seeded hash, so adding photos never moves old ones.

    Returns:
        (train, val), each ordered by hash; val has at least one image when there are two or more.
    """
    keys = {name: int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:15], 16) / 16**15 for name in images}
    ordered = sorted(set(images), key=lambda n: (keys[n], n))
    val = [n for n in ordered if keys[n] < val_fraction]
    if not val and len(ordered) > 1:
        val = ordered[:1]
    train = [n for n in ordered if n not in set(val)]
    return train, val


def yolo_labels(boxes: pd.DataFrame, width: int, height: int, source: str = "boxes table") -> np.ndarray:
    """YOLO label rows (class, cx, cy, w, h; normalised to [0, 1]) of one photo's boxes.

    Boxes are clipped to the photo first; a box with (clipped) width or height under `MIN_BOX_SIDE_PX`
    is an error.

    Args:
        boxes: rows of one photo (validated: region, x1, y1, x2, y2); the index names rows in messages.
        width, height: the photo's size in pixels.

    Raises:
        InputError: a degenerate box, naming its row and image.
    """
    clipped = clip_boxes(boxes[["x1", "y1", "x2", "y2"]].to_numpy(float), width, height)
    side = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1])
    bad = side < MIN_BOX_SIDE_PX
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = boxes.iloc[i]
        raise InputError(
            f"{source}: row {boxes.index[i]}: degenerate box for {row['image']!r} ({row['region']}: "
            f"x1={row['x1']}, y1={row['y1']}, x2={row['x2']}, y2={row['y2']} in a {width}x{height} photo)"
        )
    cls = boxes["region"].map({name: i for i, name in enumerate(REGIONS)}).to_numpy(float)
    cx = (clipped[:, 0] + clipped[:, 2]) / 2 / width
    cy = (clipped[:, 1] + clipped[:, 3]) / 2 / height
    w = (clipped[:, 2] - clipped[:, 0]) / width
    h = (clipped[:, 3] - clipped[:, 1]) / height
    return np.stack([cls, cx, cy, w, h], axis=1)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    os.symlink(src.resolve(), dst)


def write_yolo_dataset(
    boxes: pd.DataFrame,
    images_dir: Path,
    out_dir: Path,
    *,
    val_fraction: float = 0.15,
    seed: int = 0,
    max_train_images: int | None = None,
    source: str = "boxes table",
) -> YoloDataset:
    """Write `out_dir/{images,labels}/{train,val}/` and `out_dir/data.yaml` for ultralytics.

    Images are symlinked, not copied. Only photos with at least one box take part. `out_dir` is rebuilt
    from scratch (ultralytics writes `*.cache` files there, so keep it out of DVC-tracked folders).

    Args:
        boxes: image, region, x1, y1, x2, y2 in pixels of `images_dir/<image>`.
        max_train_images: keep at most this many training photos (the first by split hash).
        source: name of the table in error messages (e.g. the CSV path).

    Raises:
        InputError: malformed table, missing/unreadable photo, or a degenerate box (naming the row).
    """
    boxes = validate_boxes(boxes, source)
    train, val = split_images(boxes["image"].astype(str).tolist(), val_fraction, seed)
    if max_train_images is not None:
        train = train[:max_train_images]
    if not train or not val:
        raise InputError(f"{source}: need at least two photos with boxes to split into train and val")
    out_dir = Path(out_dir)
    for kind in ("images", "labels"):
        shutil.rmtree(out_dir / kind, ignore_errors=True)  # removes the symlinks, never their targets
    by_image = dict(tuple(boxes.groupby(boxes["image"].astype(str), sort=False)))
    for split, names in (("train", train), ("val", val)):
        for name in tqdm(names, desc=f"yolo dataset {split}", unit="photo", leave=False, disable=None):
            src = resolve_image_path(images_dir, name)
            width, height = image_size(src)
            labels = yolo_labels(by_image[name], width, height, source)
            _link(src, out_dir / "images" / split / name)
            text = "".join(f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels)
            atomic_write_text((out_dir / "labels" / split / name).with_suffix(".txt"), text)
    spec = {
        "path": str(out_dir.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(REGIONS)),
    }
    data_yaml = atomic_write_text(out_dir / "data.yaml", yaml.safe_dump(spec, sort_keys=False))
    log.info("YOLO dataset in %s: %d train / %d val photos", out_dir, len(train), len(val))
    return YoloDataset(data_yaml=data_yaml, train_images=tuple(train), val_images=tuple(val))
