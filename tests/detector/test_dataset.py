"""YOLO dataset writer: label conversion and clipping against hand-computed values, errors naming rows."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.detector.synth import make_photos
from whale_core import InputError
from whale_detector.dataset import split_images, write_yolo_dataset, yolo_labels


def _boxes(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["image", "region", "x1", "y1", "x2", "y2"])


def test_labels_are_normalised_centre_size_by_hand():
    boxes = _boxes([("a.jpg", "fullbody", 20, 10, 120, 60), ("a.jpg", "backfin", 50, 0, 70, 40)])
    labels = yolo_labels(boxes, width=200, height=100)
    # fullbody: centre (70, 35) / (200, 100), size (100, 50) / (200, 100); backfin: centre (60, 20), size (20, 40)
    np.testing.assert_allclose(labels, [[0, 0.35, 0.35, 0.5, 0.5], [1, 0.30, 0.20, 0.10, 0.40]])


def test_boxes_outside_the_photo_are_clipped():
    boxes = _boxes([("a.jpg", "backfin", -10, 50, 210, 130)])
    # clipped to (0, 50, 200, 100): centre (100, 75), size (200, 50)
    np.testing.assert_allclose(yolo_labels(boxes, width=200, height=100), [[1, 0.5, 0.75, 1.0, 0.5]])


@pytest.mark.parametrize(
    "box",
    [(250, 10, 300, 50), (50, 40, 20, 90), (10, 30, 60, 30.5)],
    ids=["outside", "inverted", "flat"],
)
def test_degenerate_box_is_an_error_naming_the_row(box):
    boxes = _boxes([("a.jpg", "fullbody", 0, 0, 100, 50)] * 3 + [("a.jpg", "backfin", *box)])
    with pytest.raises(InputError, match=r"boxes\.csv: row 3: degenerate box for 'a.jpg'"):
        yolo_labels(boxes, width=200, height=100, source="boxes.csv")


def test_unknown_region_and_bad_number_name_the_row(tmp_path):
    make_photos(tmp_path / "img", 2)
    bad_region = _boxes([("p000.jpg", "fullbody", 0, 0, 9, 9), ("p001.jpg", "tail", 0, 0, 9, 9)])
    with pytest.raises(InputError, match="line 3: unknown region 'tail'"):
        write_yolo_dataset(bad_region, tmp_path / "img", tmp_path / "ds")
    bad_number = _boxes([("p000.jpg", "fullbody", 0, 0, "wide", 9)])
    with pytest.raises(InputError, match="line 2: x2='wide' is not a finite number"):
        write_yolo_dataset(bad_number, tmp_path / "img", tmp_path / "ds")


def test_missing_photo_is_named(tmp_path):
    make_photos(tmp_path / "img", 2)
    boxes = _boxes([("p000.jpg", "fullbody", 0, 0, 9, 9), ("gone.jpg", "fullbody", 0, 0, 9, 9)])
    with pytest.raises(InputError, match="gone.jpg"):
        write_yolo_dataset(boxes, tmp_path / "img", tmp_path / "ds", val_fraction=0.5)


def test_split_is_deterministic_and_stable_when_photos_are_added():
    names = [f"img{i}.jpg" for i in range(200)]
    train, val = split_images(names, 0.2, seed=3)
    assert sorted(train + val) == sorted(names) and not set(train) & set(val)
    assert 20 <= len(val) <= 60  # 40 expected; a hash split is binomial
    assert split_images(names[::-1], 0.2, seed=3) == (train, val)
    more_train, more_val = split_images(names + [f"new{i}.jpg" for i in range(50)], 0.2, seed=3)
    assert set(val) <= set(more_val) and set(train) <= set(more_train)
    assert split_images(names, 0.2, seed=4)[1] != val


def test_dataset_on_disk_symlinks_images_and_matches_the_boxes(tmp_path):
    boxes = make_photos(tmp_path / "img", 12, size=(160, 120))
    ds = write_yolo_dataset(boxes, tmp_path / "img", tmp_path / "ds", val_fraction=0.25, seed=1, max_train_images=6)
    assert len(ds.train_images) == 6 and len(ds.val_images) >= 1
    spec = yaml.safe_load(ds.data_yaml.read_text())
    assert spec["names"] == {0: "fullbody", 1: "backfin"} and spec["train"] == "images/train"
    for split, names in (("train", ds.train_images), ("val", ds.val_images)):
        for name in names:
            link = tmp_path / "ds" / "images" / split / name
            assert link.is_symlink() and os.path.samefile(link, tmp_path / "img" / name)
            label = np.loadtxt(tmp_path / "ds" / "labels" / split / name.replace(".jpg", ".txt"), ndmin=2)
            rows = boxes[boxes["image"] == name]
            np.testing.assert_allclose(label, yolo_labels(rows, 160, 120), atol=1e-6)
    # a rebuild with fewer photos leaves no stale files behind
    write_yolo_dataset(boxes, tmp_path / "img", tmp_path / "ds", val_fraction=0.25, seed=1, max_train_images=2)
    assert len(list((tmp_path / "ds" / "images" / "train").iterdir())) == 2
