"""Cropper: crops hold the boxes' pixels, the whole-photo fallback, odd photo formats, corrupt photos."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.detector.synth import make_photos
from whale_core import InputError
from whale_detector import CropConfig, box_iou, crop_regions, expand_boxes, given_boxes


def _images(folder, names, split="train") -> pd.DataFrame:
    return pd.DataFrame({"image": names, "split": split, "path": [folder / n for n in names]})


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


def test_crops_hold_the_box_pixels_and_are_capped_keeping_aspect(tmp_path):
    boxes = make_photos(tmp_path / "img", 3, size=(320, 240))
    boxes["conf"] = 0.9
    cfg = CropConfig(max_side_px=64, margin_frac=0.0)
    table = crop_regions(
        _images(tmp_path / "img", ["p000.jpg", "p001.jpg", "p002.jpg"]), boxes, tmp_path / "crops", cfg
    )
    assert len(table) == 6 and set(table["source"]) == {"detector"}
    for _, row in table.iterrows():
        true = boxes[(boxes.image == row.image) & (boxes.region == row.region)].iloc[0]
        assert (row.x1, row.y1, row.x2, row.y2) == (true.x1, true.y1, true.x2, true.y2)  # integer boxes kept as is
        width, height = true.x2 - true.x1, true.y2 - true.y1
        scale = min(1.0, 64 / max(width, height))
        expected = (
            Image.open(tmp_path / "img" / row.image)
            .convert("RGB")
            .crop((true.x1, true.y1, true.x2, true.y2))
            .resize((round(width * scale), round(height * scale)), Image.Resampling.BILINEAR, reducing_gap=2.0)
        )
        crop = Image.open(tmp_path / "crops" / row.region / "train" / row.image)
        assert row.crop == f"{row.region}/train/{row.image}"
        assert max(crop.size) == 64 or scale == 1.0
        assert _mean_abs_diff(crop, expected) < 4.0  # JPEG re-encoding only


def test_photo_without_box_gets_the_whole_photo_not_the_previous_one(tmp_path):
    boxes = make_photos(tmp_path / "img", 2, size=(160, 120))
    boxes = boxes[boxes.image == "p000.jpg"].assign(conf=0.8)  # p001 has no box at all
    table = crop_regions(_images(tmp_path / "img", ["p000.jpg", "p001.jpg"]), boxes, tmp_path / "c", CropConfig())
    fallback = table[table.image == "p001.jpg"]
    assert list(fallback.source) == ["full_image", "full_image"] and fallback.conf.isna().all()
    assert (fallback[["x1", "y1", "x2", "y2"]].to_numpy() == [0, 0, 160, 120]).all()
    whole = Image.open(tmp_path / "img" / "p001.jpg").convert("RGB")
    for region in ("fullbody", "backfin"):
        assert _mean_abs_diff(Image.open(tmp_path / "c" / region / "train" / "p001.jpg"), whole) < 4.0


def test_grayscale_cmyk_and_png_photos_are_cropped(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 80, 3), dtype=np.uint8))
    rgb.convert("L").save(folder / "gray.jpg")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.save(folder / "alpha.png")
    names = ["gray.jpg", "cmyk.jpg", "alpha.png"]
    boxes = pd.DataFrame({"image": names, "region": "fullbody", "x1": 10, "y1": 5, "x2": 30, "y2": 45, "conf": 0.5})
    table = crop_regions(_images(folder, names, split="test"), boxes, tmp_path / "c", CropConfig())
    assert (tmp_path / "c" / "fullbody" / "test" / "alpha.jpg").is_file()
    for name in ("gray", "cmyk", "alpha"):
        assert Image.open(tmp_path / "c" / "fullbody" / "test" / f"{name}.jpg").size == (20, 40)
        assert Image.open(tmp_path / "c" / "backfin" / "test" / f"{name}.jpg").size == (80, 50)
    assert list(table.source) == ["detector", "full_image"] * 3


def test_corrupt_photo_is_an_input_error_with_its_name(tmp_path):
    make_photos(tmp_path / "img", 1)
    (tmp_path / "img" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    images = _images(tmp_path / "img", ["p000.jpg", "broken.jpg"])
    with pytest.raises(InputError, match="broken.jpg"):
        crop_regions(
            images, pd.DataFrame(columns=["image", "region", "x1", "y1", "x2", "y2", "conf"]), tmp_path, CropConfig()
        )


def test_given_boxes_keep_the_best_above_threshold_with_margin(tmp_path):
    make_photos(tmp_path / "img", 1, size=(200, 100))
    raw = pd.DataFrame(
        [
            ("p000.jpg", "fullbody", 20, 20, 120, 60, 0.6),
            ("p000.jpg", "fullbody", 0, 0, 10, 10, 0.9),  # the most confident fullbody wins
            ("p000.jpg", "backfin", 50, 10, 70, 30, 0.1),  # below the threshold: dropped
            ("other.jpg", "backfin", 0, 0, 5, 5, 0.9),  # not a photo of this set
        ],
        columns=["image", "region", "x1", "y1", "x2", "y2", "conf"],
    )
    out = given_boxes(raw, _images(tmp_path / "img", ["p000.jpg"]), CropConfig(conf_threshold=0.25, margin_frac=0.5))
    assert len(out) == 1 and out.iloc[0].region == "fullbody" and out.iloc[0].source == "boxes_csv"
    # (0, 0, 10, 10) grown by 5 px each side, clipped at 0
    assert tuple(out.iloc[0][["x1", "y1", "x2", "y2"]]) == (0, 0, 15, 15)


def test_expand_and_iou_by_hand():
    grown = expand_boxes(np.array([[10.0, 20.0, 50.0, 40.0]]), 0.25, width=55, height=100)
    np.testing.assert_allclose(grown, [[0.0, 15.0, 55.0, 45.0]])  # +-10 x, +-5 y; x clipped to [0, 55]
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 4]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 4, 4]], float)
    np.testing.assert_allclose(box_iou(a, b), [50 / 150, 0.0, 1.0])


def test_crop_quality_per_species_against_hand_computed_iou(tmp_path):
    from whale_detector import crop_quality

    for name in ("p1.jpg", "p2.jpg"):
        Image.new("RGB", (100, 100)).save(tmp_path / name)
    images = _images(tmp_path, ["p1.jpg", "p2.jpg"])
    truth = pd.DataFrame(
        [["p1.jpg", "fullbody", 10, 10, 50, 50], ["p2.jpg", "fullbody", 10, 10, 50, 50],
         ["p1.jpg", "backfin", 20, 20, 40, 40], ["p2.jpg", "backfin", 20, 20, 40, 40]],
        columns=["image", "region", "x1", "y1", "x2", "y2"],
    )  # fmt: skip
    crops = pd.DataFrame(
        [["p1.jpg", "fullbody", 10, 10, 50, 50, "detector"], ["p2.jpg", "fullbody", 10, 10, 30, 50, "detector"],
         ["p1.jpg", "backfin", 0, 0, 100, 100, "full_image"], ["p2.jpg", "backfin", 20, 20, 40, 40, "detector"]],
        columns=["image", "region", "x1", "y1", "x2", "y2", "source"],
    )  # fmt: skip
    quality = crop_quality(crops, truth, images, 0.0, species={"p1.jpg": "beluga", "p2.jpg": "orca"})
    # p2 fullbody: 20×40 inside 40×40 → IoU 0.5; p1 backfin: the whole photo vs a 20×20 box → 400 / 10000
    assert quality["iou_fullbody"] == pytest.approx(0.75) and quality["iou_backfin"] == pytest.approx(0.52)
    assert quality["fallback_share"] == 0.25 and quality["fallback_share_backfin"] == 0.5
    beluga, orca = quality["by_species"]["beluga"], quality["by_species"]["orca"]
    assert beluga["iou_fullbody"] == 1.0 and beluga["iou_backfin"] == pytest.approx(0.04)
    assert beluga["fallback_share_backfin"] == 1.0 and beluga["n_iou_backfin"] == 1
    assert orca["iou_fullbody"] == pytest.approx(0.5) and orca["iou_backfin"] == 1.0
    assert orca["fallback_share_backfin"] == 0.0
