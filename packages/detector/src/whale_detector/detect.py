"""Batched YOLO prediction: per photo and region, the most confident box above the threshold."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from whale_core import REGIONS, InputError, load_rgb
from whale_detector.boxes import check_boxes, expand_boxes
from whale_detector.config import CropConfig
from whale_detector.yolo_env import prepare_ultralytics

log = logging.getLogger(__name__)

DETECTION_COLUMNS = ["image", "region", "x1", "y1", "x2", "y2", "conf"]


def _load_bgr(path: Path) -> np.ndarray:
    """A photo as ultralytics expects arrays: H x W x 3, BGR, uint8 (decoded by `load_rgb`: EXIF, CMYK, ...)."""
    return np.ascontiguousarray(np.asarray(load_rgb(path))[:, :, ::-1])


def _batches(paths: Sequence[Path], size: int, pool: ThreadPoolExecutor) -> Iterator[list[np.ndarray]]:
    for start in range(0, len(paths), size):
        yield list(pool.map(_load_bgr, paths[start : start + size]))


def best_per_region(xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> dict[int, tuple[np.ndarray, float]]:
    """{class id: (box, conf)} keeping the most confident box of each class."""
    best: dict[int, tuple[np.ndarray, float]] = {}
    for i in np.argsort(-conf, kind="stable"):
        best.setdefault(int(cls[i]), (xyxy[i], float(conf[i])))
    return best


def _load_model(weights: str | os.PathLike[str]):  # -> ultralytics.YOLO (imported lazily)
    weights = Path(weights)
    if not weights.is_file():
        raise InputError(f"{weights}: detector weights not found (run the train_detector stage first)")
    from ultralytics import YOLO

    return YOLO(str(weights), task="detect")


def detect_boxes(
    weights: str | os.PathLike[str],
    image_paths: Sequence[str | os.PathLike[str]],
    cfg: CropConfig,
    *,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Detect fullbody and backfin in each photo.

    Photos are decoded with `whale_core.load_rgb` (so boxes are in the same pixel frame as the crops) by
    `cfg.workers` threads and predicted `cfg.batch` at a time. Boxes below `cfg.conf_threshold` are ignored;
    of the rest, the most confident per photo and region is kept and grown by `cfg.margin_frac` of its size
    (clipped to the photo).

    Args:
        weights: a local ultralytics checkpoint (e.g. `models/detector/best.pt`).
        image_paths: the photos.
        names: the `image` value of each photo (default: the file name).

    Returns:
        image, region, x1, y1, x2, y2, conf — at most one row per photo and region; photos where nothing
        passed the threshold (or whose box is under `cfg.min_box_px`: dropped, counted in the log) have no row.

    Raises:
        InputError: missing weights; a missing or corrupt photo (naming it).
    """
    prepare_ultralytics()
    model = _load_model(weights)
    imgsz = cfg.imgsz or int(model.ckpt.get("train_args", {}).get("imgsz", 640))
    paths = [Path(p) for p in image_paths]
    names = list(names) if names is not None else [p.name for p in paths]
    if len(names) != len(paths):
        raise ValueError(f"{len(names)} names for {len(paths)} photos")
    rows: list[tuple] = []
    progress = tqdm(total=len(paths), desc="detect", unit="photo", disable=None)
    with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        for offset, batch in zip(range(0, len(paths), cfg.batch), _batches(paths, cfg.batch, pool)):
            # rect=False: square letterboxing for every batch, so a photo's boxes never depend on
            # which other photos share its batch (ultralytics pads minimally when all shapes agree).
            results = model.predict(
                batch, imgsz=imgsz, conf=cfg.conf_threshold, iou=cfg.iou_nms, device=cfg.device, rect=False,
                verbose=False,
            )  # fmt: skip
            for j, (photo, result) in enumerate(zip(batch, results)):
                boxes = result.boxes
                best = best_per_region(boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(), boxes.cls.cpu().numpy())
                height, width = photo.shape[:2]
                for cls_id, (box, conf) in sorted(best.items()):
                    grown = expand_boxes(box[None, :], cfg.margin_frac, width, height)[0]
                    rows.append((names[offset + j], REGIONS[cls_id], *grown.tolist(), conf))
            progress.update(len(batch))
    progress.close()
    table = pd.DataFrame(rows, columns=DETECTION_COLUMNS)
    table, report = check_boxes(table, None, "detector", min_side_px=cfg.min_box_px, drop=True)
    log.info("detected %d boxes in %d photos (%d below %g px dropped)", len(table), len(paths), report.n_dropped,
             cfg.min_box_px)  # fmt: skip
    return table.reset_index(drop=True)
