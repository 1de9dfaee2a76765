"""The review page's gallery photos: a catalogue's originals are its prepared `photo` paths under `raw_dir`, a
Kaggle layout's are in `train_images/`; a name that leads out of its folder finds nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from whale_reid.review.outputs import gallery_locator, original_locator


def _photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (10, 20, 30)).save(path)
    return path


def _prepared(repo: Path, table: pd.DataFrame) -> None:
    (repo / "data/prepared").mkdir(parents=True)
    table.to_csv(repo / "data/prepared/train.csv", index=False)


def test_a_catalogue_photo_is_found_by_its_prepared_path_and_shown_from_its_crop_first(tmp_path: Path) -> None:
    repo, raw = tmp_path / "repo", tmp_path / "catalogue"
    original = _photo(raw / "humpback" / "HW-012" / "IMG_0001.JPG")
    _photo(tmp_path / "secret.jpg")
    (raw / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    image = "humpback/HW-012/IMG_0001.JPG"
    _prepared(repo, pd.DataFrame({"image": [image, "escape", "linked"], "photo": [image, "../secret.jpg", "link.jpg"],
                                  "individual_id": ["HW-012", "X", "Y"]}))  # fmt: skip
    originals = original_locator(repo, raw)
    assert originals(image) == original
    assert originals("escape") is None and originals("linked") is None  # out of raw_dir, by name or by symlink
    assert originals("humpback/HW-012/IMG_0002.JPG") is None  # not in the prepared table (and no train_images/)

    shown = gallery_locator(repo, raw, "fullbody")
    assert shown(image) == original  # no crop here: the original stands in
    crop = _photo(repo / "data/crops/fullbody/train/humpback/HW-012/IMG_0001.jpg")
    assert shown(image) == crop


def test_a_kaggle_photo_is_found_in_train_images(tmp_path: Path) -> None:
    repo, raw = tmp_path / "repo", tmp_path / "raw"
    original = _photo(raw / "train_images" / "00021adfb725ed.jpg")
    _prepared(repo, pd.DataFrame({"image": ["00021adfb725ed.jpg"], "individual_id": ["cadddb1636b9"]}))
    assert original_locator(repo, raw)("00021adfb725ed.jpg") == original
    _photo(raw / "boxes.jpg")
    assert original_locator(repo, raw)("../boxes.jpg") is None  # outside train_images/
    assert gallery_locator(repo, raw, "backfin")("00021adfb725ed.jpg") == original
