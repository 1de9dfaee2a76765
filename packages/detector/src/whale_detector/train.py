"""Train the fullbody/backfin YOLO detector with ultralytics, offline and without its side effects."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from whale_core import REGIONS, InputError, atomic_write_json
from whale_detector.config import DetectorConfig
from whale_detector.dataset import write_yolo_dataset
from whale_detector.yolo_env import plain_console, prepare_ultralytics

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, float], int], None]
_AUGMENT_KEYS = ("mosaic", "mixup", "fliplr", "flipud", "hsv_h", "hsv_s", "hsv_v", "scale", "translate", "degrees")
_SCHEDULE_KEYS = ("epochs", "batch", "imgsz", "device", "workers", "optimizer", "lr0", "warmup_epochs", "amp")


@dataclass(frozen=True)
class DetectorResult:
    """Outcome of `train_detector`.

    Attributes:
        weights: the best checkpoint (by ultralytics' fitness 0.1*mAP50 + 0.9*mAP50-95 on val).
        args_yaml: ultralytics' record of every training argument.
        map50, map50_95: overall val mAP of the best checkpoint.
        per_class: {region: {"map50": ..., "map50_95": ...}}; None where val has no box of that region.
        n_train_photos, n_val_photos: photos in each split.
        history: one dict of losses/metrics per epoch, in order (the same dicts `on_epoch_end` received).
    """

    weights: Path
    args_yaml: Path
    map50: float
    map50_95: float
    per_class: dict[str, dict[str, float | None]]
    n_train_photos: int = 0
    n_val_photos: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def metrics(self) -> dict[str, float | None]:
        """Flat metric dict (`map50`, `map50_95`, `<region>_map50`, `<region>_map50_95`) for JSON/MLflow."""
        flat: dict[str, float | None] = {"map50": self.map50, "map50_95": self.map50_95}
        for region, values in self.per_class.items():
            flat.update({f"{region}_{key}": value for key, value in values.items()})
        return flat


def metric_name(key: str) -> str:
    """Ultralytics metric key → a plain name MLflow accepts: `metrics/mAP50-95(B)` → `val_map50_95`."""
    key = key.replace("metrics/", "val_").replace("(B)", "").replace("/", "_").replace("-", "_")
    return re.sub(r"[^0-9a-zA-Z_]", "_", key).lower()


MODELS_DIR = Path(__file__).parent / "models"


def resolve_model(model: str) -> str:
    """What to hand to `ultralytics.YOLO`: a local file, a model yaml shipped here, or an ultralytics yaml name.

    Raises:
        InputError: a weights name (`*.pt`, ...) that is not a local file — ultralytics would download it.
    """
    if Path(model).is_file():
        return model
    if (MODELS_DIR / model).is_file():
        return str(MODELS_DIR / model)
    if model.endswith((".pt", ".pth", ".onnx")):
        raise InputError(
            f"detector.model: weights file {model!r} not found (nothing is downloaded: use a local weights file "
            "or a model yaml such as yolo11n.yaml or yolo11-pico.yaml)"
        )
    return model


def _epoch_callbacks(history: list[dict[str, float]], on_epoch_end: EpochCallback | None) -> dict[str, Callable]:
    """Callbacks that record per-epoch losses, and val metrics on validated epochs only (skipping ultralytics'
    extra final-eval call)."""
    finished: set[int] = set()
    seen: dict[str, Any] = {"metrics": None}  # validation replaces trainer.metrics with a new dict

    def on_train_start(trainer: Any) -> None:
        seen["metrics"] = trainer.metrics  # the placeholder zeros, before any validation

    def on_train_epoch_end(trainer: Any) -> None:
        finished.add(int(trainer.epoch))

    def on_fit_epoch_end(trainer: Any) -> None:
        epoch = int(trainer.epoch)
        if epoch not in finished:  # final_eval re-fires this hook with epoch+1
            return
        finished.discard(epoch)
        values = trainer.label_loss_items(trainer.tloss, prefix="train")
        if trainer.metrics is not seen["metrics"]:  # else: zeros, or the previous validation's numbers again
            values = {**values, **(trainer.metrics or {})}
        seen["metrics"] = trainer.metrics
        values.update({f"lr_pg{i}": lr for i, lr in enumerate(trainer.lr.values())} if trainer.lr else {})
        metrics = {metric_name(k): float(v) for k, v in values.items() if math.isfinite(float(v))}
        history.append(metrics)
        if on_epoch_end is not None:
            on_epoch_end(metrics, epoch + 1)

    return {"on_train_start": on_train_start, "on_train_epoch_end": on_train_epoch_end,
            "on_fit_epoch_end": on_fit_epoch_end}  # fmt: skip


def _final_metrics(trainer: Any) -> tuple[float, float, dict[str, dict[str, float | None]]]:
    box = trainer.validator.metrics.box
    per_class: dict[str, dict[str, float | None]] = {r: {"map50": None, "map50_95": None} for r in REGIONS}
    for i, cls in enumerate(box.ap_class_index):
        per_class[REGIONS[int(cls)]] = {"map50": float(box.ap50[i]), "map50_95": float(box.ap[i])}
    return float(box.map50), float(box.map), per_class


def _run_digest(cfg: DetectorConfig, boxes: pd.DataFrame) -> str:
    """What a resumable run must share with the interrupted one: the config and the boxes."""
    rows = pd.util.hash_pandas_object(boxes, index=False).to_numpy().tobytes()
    blob = json.dumps(cfg.to_dict(), sort_keys=True).encode() + rows
    return hashlib.sha256(blob).hexdigest()[:16]


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def train_detector(
    cfg: DetectorConfig,
    boxes: pd.DataFrame,
    images_dir: Path,
    work_dir: Path,
    *,
    on_epoch_end: EpochCallback | None = None,
) -> DetectorResult:
    """Train YOLO on the boxes of `images_dir`'s photos; everything is written under `work_dir`.

    `work_dir/dataset/` holds the ultralytics dataset (symlinks + labels + its caches) and
    `work_dir/runs/train/` the run (weights/best.pt, args.yaml, results.csv). Nothing is downloaded and no
    file is written elsewhere (ultralytics' settings/fonts live in `$YOLO_CONFIG_DIR`).

    Resume: `whale_state.json` in the run folder records the digest of (config, boxes) and whether the run
    finished. A run that was interrupted (killed, crashed) with the same digest continues from its
    `last.pt` with ultralytics' own resume — a pickle this function wrote itself, the only kind it loads.
    Anything else starts a fresh run.

    Args:
        boxes: image, region, x1, y1, x2, y2 (pixels); photos without a row are not used.
        on_epoch_end: called after each epoch with losses and val metrics (`train_box_loss`, `val_map50`,
            `val_map50_95`, ...) and the 1-based epoch.

    Raises:
        InputError: bad boxes/photos (naming file and row) or a model weights file that does not exist.
    """
    model_source = resolve_model(cfg.model)
    prepare_ultralytics(cfg.threads)
    from ultralytics import YOLO

    work_dir = Path(work_dir)
    dataset = write_yolo_dataset(
        boxes,
        images_dir,
        work_dir / "dataset",
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        max_train_images=cfg.max_train_images,
    )
    run_dir = (work_dir / "runs" / "train").resolve()
    state_file, last = run_dir / "whale_state.json", run_dir / "weights" / "last.pt"
    digest = _run_digest(cfg, boxes)
    resume = last.is_file() and _read_state(state_file) == {"digest": digest, "finished": False}
    model = YOLO(str(last) if resume else model_source, task="detect")
    history: list[dict[str, float]] = []
    for event, callback in _epoch_callbacks(history, on_epoch_end).items():
        model.add_callback(event, callback)
    if resume:  # an interrupted run of the same config and data: ultralytics continues from last.pt
        log.info("resuming the interrupted detector run from %s", last)
        with plain_console():
            model.train(resume=True, plots=False, verbose=False)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        atomic_write_json(state_file, {"digest": digest, "finished": False})
        options = {key: getattr(cfg, key) for key in _AUGMENT_KEYS + _SCHEDULE_KEYS}
        log.info("training %s on %d photos (%d val)", cfg.model, len(dataset.train_images), len(dataset.val_images))
        with plain_console():
            model.train(
                data=str(dataset.data_yaml),
                project=str(run_dir.parent),
                name=run_dir.name,
                exist_ok=True,
                cache="disk" if cfg.cache else False,  # .npy beside the dataset links: deterministic, unlike "ram"
                val=cfg.val_each_epoch,
                close_mosaic=min(cfg.close_mosaic, cfg.epochs),
                patience=cfg.patience,
                seed=cfg.seed,
                plots=False,
                verbose=False,
                **options,
            )
    atomic_write_json(state_file, {"digest": digest, "finished": True})
    trainer = model.trainer
    map50, map50_95, per_class = _final_metrics(trainer)
    log.info("detector val mAP50 %.3f, mAP50-95 %.3f (%s)", map50, map50_95, per_class)
    return DetectorResult(
        weights=Path(trainer.best),
        args_yaml=Path(trainer.save_dir) / "args.yaml",
        map50=map50,
        map50_95=map50_95,
        per_class=per_class,
        n_train_photos=len(dataset.train_images),
        n_val_photos=len(dataset.val_images),
        history=history,
    )
