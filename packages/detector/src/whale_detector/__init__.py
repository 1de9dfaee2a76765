"""Fullbody/backfin detection and cropping (step 1 of the recipe), on ultralytics YOLO.

Public API: `DetectorConfig`/`CropConfig` (params sections `detector`/`crop`), `write_yolo_dataset`,
`train_detector` → `DetectorResult`, `detect_boxes`, `given_boxes`, `box_files` + `convert_boxes` + `check_converted`
(public box files), `check_boxes`, `crop_regions`, `crop_quality`, `box_iou`.
Importing this package does not import ultralytics; the functions that need it set it up offline first.
"""

from whale_core import REGIONS
from whale_detector.box_formats import FORMATS, box_files, check_converted, convert_boxes
from whale_detector.boxes import BoxCheck, box_iou, check_boxes, clip_boxes, expand_boxes, validate_boxes
from whale_detector.config import CropConfig, DetectorConfig
from whale_detector.crop import crop_regions, given_boxes
from whale_detector.dataset import YoloDataset, write_yolo_dataset
from whale_detector.detect import detect_boxes
from whale_detector.evaluate import crop_quality
from whale_detector.train import DetectorResult, train_detector

__all__ = [
    "FORMATS",
    "BoxCheck",
    "box_files",
    "check_boxes",
    "check_converted",
    "convert_boxes",
    "REGIONS",
    "CropConfig",
    "DetectorConfig",
    "DetectorResult",
    "YoloDataset",
    "box_iou",
    "clip_boxes",
    "crop_quality",
    "crop_regions",
    "detect_boxes",
    "expand_boxes",
    "given_boxes",
    "train_detector",
    "validate_boxes",
    "write_yolo_dataset",
]
