"""Any name the filesystem allows is a survey photo like any other: dots, spaces, `#?%`, a backslash, bytes that
are not UTF-8, one base name in two folders. And identify's own output folder is never read as survey input."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.reliability.catalogue import make_repo, write_decisions, write_run
from whale_core import atomic_write_csv, read_table, safe_name
from whale_detector import CropConfig, crop_regions
from whale_reid.catalogue.enroll import enroll
from whale_reid.identify.queries import (
    QUERY_SPLIT,
    check_photos,
    content_id,
    find_photos,
    path_column,
    photo_key,
    photo_text,
)
from whale_retrieval import GalleryIndex

NAMES = [
    "2024.06.01_whale.jpg", "with space #1?%.jpg", "back\\slash.jpg", os.fsdecode(b"caf\xe9 latin-1.jpg"),
    "a/same.jpg", "b/same.jpg",
]  # fmt: skip


@pytest.fixture
def survey(tmp_path: Path) -> Path:
    folder = tmp_path / "survey"
    for n, name in enumerate(NAMES):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (20 * n, 90, 140)).save(folder / name, format="JPEG")
    return folder


def test_odd_names_are_found_cropped_where_identify_reads_them_and_written(survey: Path, tmp_path: Path) -> None:
    photos = find_photos([survey])
    assert sorted(photo_text(p.relative_to(survey)) for p in photos) == sorted(
        n.replace("\udce9", "\\xe9") for n in NAMES
    )
    readable, errors = check_photos(photos)
    assert len(readable) == len(NAMES) and not errors
    keys = [photo_key(i, p) for i, p in enumerate(readable)]
    images = pd.DataFrame({"image": keys, "split": QUERY_SPLIT, "path": path_column(readable)})
    no_boxes = pd.DataFrame(columns=["image", "region", "x1", "y1", "x2", "y2", "conf"])
    crop_regions(images, no_boxes, tmp_path / "crops", CropConfig())
    for key in keys:  # where identify's embedder and matcher read each crop
        assert (tmp_path / "crops" / "fullbody" / QUERY_SPLIT / f"{key}.jpg").is_file(), key
    ids = [content_id(p) for p in readable]
    assert len(set(ids)) == len(ids) and all(safe_name(f"{i}.jpg") for i in ids)
    table = pd.DataFrame({"photo": [photo_text(p) for p in readable], "image_id": ids})
    atomic_write_csv(tmp_path / "matches.csv", table)  # every name can be written to a UTF-8 CSV
    assert read_table(tmp_path / "matches.csv")["photo"].str.contains(r"\\xe9").sum() == 1


def test_photos_with_odd_names_are_enrolled(survey: Path, tmp_path: Path) -> None:
    readable, _ = check_photos(find_photos([survey]))
    ids = [content_id(p) for p in readable]
    repo = make_repo(tmp_path / "repo")
    crops = [f"crops/fullbody/query/{photo_key(i, p)}.jpg" for i, p in enumerate(readable)]
    write_run(tmp_path / "identify", repo, ids, crops)
    result = enroll(repo, write_decisions(tmp_path / "decisions.csv", len(ids)), tmp_path / "identify")
    assert result.version == "v0001" and sorted(result.added["image_id"]) == sorted(ids)
    gallery = GalleryIndex.load(repo / "models/catalogue/versions/v0001")
    assert set(ids) <= set(gallery.image_ids.tolist())


def test_the_output_folder_inside_the_survey_is_never_input(survey: Path) -> None:
    out = survey / "identify"
    first = find_photos([survey], out=out)
    for folder in (out / "crops/fullbody/query", out / "review/img", survey / ".identify.0123abcd.staging/crops"):
        folder.mkdir(parents=True)
        Image.new("RGB", (20, 10)).save(folder / "00000-crop.jpg")
    (survey / ".identify.lock").touch()
    assert find_photos([survey], out=out) == first and len(first) == len(NAMES)
    assert find_photos([survey, out / "review/img/00000-crop.jpg"], out=out) == first  # named explicitly too
