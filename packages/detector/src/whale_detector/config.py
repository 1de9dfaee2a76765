"""Typed params sections of the detector package: `detector` (training) and `crop` (detection + cropping)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from whale_core import Config, ConfigError


@dataclass(frozen=True)
class DetectorConfig(Config):
    """params.yaml `detector`: the YOLO model, its input size, schedule and augmentation.

    Defaults fit the demo data on 2 CPU cores (yolo11n at 192 px, 300 training photos, 20 epochs, validation
    at the end only); the `kaggle` profile sets the reference's large-model, 1280 px run.

    Attributes:
        model: a model yaml built from scratch — ultralytics' (`yolo11n.yaml`, `yolov5x6u.yaml`, ...) or
            `yolo11-pico.yaml` shipped with this package (YOLO11 at 1/8 width, for CPUs) — or a path to a LOCAL
            weights file to fine-tune. A bare `*.pt` name that is not a local file is refused
            (ultralytics would download it).
        imgsz: square training/inference input side in pixels.
        val_fraction: share of photos (by image, hash-based so stable under reordering) held out for mAP.
        max_train_images: train on at most this many of the training photos (None: all) — the CPU budget knob.
        device: ultralytics device string: `cpu`, `0`, `0,1`, or `""` for the best available.
        workers: dataloader worker processes.
        threads: torch CPU threads (None: all cores; ultralytics alone would leave one core idle).
        cache: keep the decoded, resized training images as .npy files beside the work dir's dataset links
            (ultralytics' disk cache: the same results as no cache; its RAM cache may not be deterministic).
        val_each_epoch: compute val mAP after every epoch (False: only after the last one — saves CPU time;
            the per-epoch history then has losses only and the last epoch's weights are kept).
        amp: mixed precision on CUDA (ignored on the CPU); ultralytics' download-based AMP self-check is skipped.
        optimizer: ultralytics optimizer name (`SGD`, `AdamW`, `auto`, ...).
        lr0: initial learning rate.
        warmup_epochs: ultralytics linear warm-up length in epochs.
        close_mosaic: switch mosaic off for this many final epochs.
        patience: early-stopping patience in epochs.
        seed: split and training seed.
        mosaic, mixup, fliplr, flipud, hsv_h, hsv_s, hsv_v, scale, translate, degrees: ultralytics augmentation
            strengths (probabilities for mosaic/mixup/flips, fractions for the rest, degrees for rotation).
    """

    SECTION = "detector"
    RANGES = {
        "imgsz": "[32, 8192]",
        "epochs": ">= 1",
        "batch": ">= 1",
        "val_fraction": "(0, 1)",
        "max_train_images": ">= 1",
        "threads": "[1, 1024]",
        "lr0": "(0, 10)",
        "warmup_epochs": ">= 0",
        "close_mosaic": ">= 0",
        "patience": ">= 0",  # 0: never stop early
        "workers": "[0, 256]",
        "mosaic": "[0, 1]",
        "mixup": "[0, 1]",
        "fliplr": "[0, 1]",
        "flipud": "[0, 1]",
        "hsv_h": "[0, 1]",
        "hsv_s": "[0, 1]",
        "hsv_v": "[0, 1]",
        "scale": "[0, 1)",  # the gain is drawn from [1 - scale, 1 + scale]: 1 could shrink a photo to nothing
        "translate": "[0, 1]",
        "degrees": "[0, 180]",  # the rotation is drawn from [-degrees, +degrees]
    }
    model: str = "yolo11n.yaml"
    imgsz: int = 192
    epochs: int = 20
    batch: int = 16
    val_fraction: float = 0.15
    max_train_images: int | None = 300
    device: str = "cpu"
    workers: int = 0
    threads: int | None = None
    cache: bool = True
    val_each_epoch: bool = False
    amp: bool = False
    optimizer: str = "auto"
    lr0: float = 0.01
    warmup_epochs: float = 1.0
    close_mosaic: int = 5
    patience: int = 100
    seed: int = 0
    mosaic: float = 1.0
    mixup: float = 0.0
    fliplr: float = 0.5
    flipud: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    scale: float = 0.5
    translate: float = 0.1
    degrees: float = 0.0


@dataclass(frozen=True)
class CropConfig(Config):
    """params.yaml `crop`: where boxes come from and how crops are cut and stored.

    Attributes:
        box_source: `detector` (predict with the trained weights), `boxes_csv` (use given boxes, no detector) or
            `none` (every crop is the whole photo: a catalogue without boxes; no detector).
        boxes_csv: the boxes file for `box_source: boxes_csv` (image,region,x1,y1,x2,y2[,conf]; pixels — see
            `whale-reid boxes convert` for the public box files).
        detector_stages: for DVC only: the `train_detector@<name>` stages dvc.yaml generates (`foreach`); `[]`
            with `box_source: boxes_csv` or `none`, so no detector is trained nor its boxes file required.
        box_input: for DVC only: what the crop stage depends on — `models/detector`, the `boxes_csv` file, or
            `data/prepared` with `box_source: none` (a dependency the stage has anyway).
        conf_threshold: boxes below this confidence are ignored (the photo then falls back to the whole image).
        iou_nms: NMS IoU threshold of the detector.
        min_box_px: the smallest width and height a box (given or detected) may have, in photo pixels: a
            given box below it is refused naming its line, a detected one is dropped (the photo then falls
            back to the whole image).
        margin_frac: grow each box by this fraction of its width/height on every side (clipped to the photo).
        imgsz: detector input side for prediction (None: the size the detector was trained at).
        batch: photos per prediction batch.
        device: ultralytics device string for prediction.
        max_side_px: crops larger than this on their longer side are downscaled (aspect ratio kept);
            e.g. 2x the embedder's input so later stages read small files.
        jpeg_quality: JPEG quality of stored crops.
        workers: threads decoding/cropping/encoding photos in parallel.
    """

    SECTION = "crop"
    RANGES = {
        "conf_threshold": "[0, 1]",
        "iou_nms": "[0, 1]",
        "min_box_px": ">= 0",
        "margin_frac": "[0, 1]",
        "imgsz": "[32, 8192]",
        "batch": ">= 1",
        "max_side_px": "[8, 16384]",
        "jpeg_quality": "[1, 100]",
        "workers": "[1, 256]",
    }
    box_source: Literal["detector", "boxes_csv", "none"] = "detector"
    boxes_csv: str | None = None
    detector_stages: tuple[str, ...] = ("yolo",)
    box_input: str = "models/detector"
    conf_threshold: float = 0.1
    iou_nms: float = 0.7
    min_box_px: float = 4.0
    margin_frac: float = 0.05
    imgsz: int | None = None
    batch: int = 16
    device: str = "cpu"
    max_side_px: int = 512
    jpeg_quality: int = 95
    workers: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.box_source == "boxes_csv" and not self.boxes_csv:
            raise ConfigError("crop.box_source: 'boxes_csv' needs boxes_csv: <path>")
        box_input = {"detector": "models/detector", "boxes_csv": self.boxes_csv, "none": "data/prepared"}
        if (
            bool(self.detector_stages) != (self.box_source == "detector")
            or self.box_input != box_input[self.box_source]
        ):
            stages = "[yolo]" if self.box_source == "detector" else "[]"
            raise ConfigError(
                f"crop.box_source: {self.box_source} needs detector_stages: {stages} and "
                f"box_input: {box_input[self.box_source]} (the DVC graph reads both)"
            )
