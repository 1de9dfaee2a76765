"""`whale-reid boxes convert` and the box checks every box source passes (converted, given, detected)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from whale_core import InputError, image_size
from whale_detector import check_boxes, convert_boxes, validate_boxes
from whale_reid.cli import main
from whale_reid.demo import TINY_DEMO, generate_demo


def _convert(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(["boxes", "convert", *args])
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_a_yolo_folder_of_the_demo_true_boxes_round_trips_within_1_5_px(tmp_path, capsys):
    raw = tmp_path / "raw"
    generate_demo(TINY_DEMO, raw)
    truth = pd.read_csv(raw / "boxes.csv")
    dirs = [raw / "train_images", raw / "test_images"]
    labels = tmp_path / "labels"
    labels.mkdir()
    for image, rows in truth.groupby("image"):
        path = next(d / image for d in dirs if (d / image).is_file())
        w, h = image_size(path)
        lines = [
            f"{['fullbody', 'backfin'].index(r.region)} {(r.x1 + r.x2) / 2 / w:.6f} {(r.y1 + r.y2) / 2 / h:.6f} "
            f"{(r.x2 - r.x1) / w:.6f} {(r.y2 - r.y1) / h:.6f}"
            for r in rows.itertuples()
        ]
        (labels / Path(image).with_suffix(".txt")).write_text("\n".join(lines) + "\n")
    out = tmp_path / "boxes.csv"
    code, printed, err = _convert(
        capsys, str(labels), "--format", "yolo", "--images", *map(str, dirs), "--out", str(out)
    )
    assert code == 0, err
    assert printed.startswith(f"{len(truth)} boxes of {truth['image'].nunique()} photos")
    got = pd.read_csv(out)
    assert list(got.columns) == ["image", "region", "x1", "y1", "x2", "y2", "conf"]
    both = truth.merge(got, on=["image", "region"], suffixes=("_true", ""), validate="one_to_one")
    assert len(both) == len(truth)
    for col in ("x1", "y1", "x2", "y2"):
        assert np.abs(both[col] - both[f"{col}_true"]).max() <= 1.5, col


def test_an_inverted_box_is_refused_naming_file_and_line(tmp_path, capsys):
    src = tmp_path / "given.csv"
    src.write_text("image,region,x1,y1,x2,y2\na.jpg,fullbody,10,10,90,60\nb.jpg,backfin,10,10,90,60\n"
                   "c.jpg,fullbody,80,10,20,60\n")  # fmt: skip
    code, _, err = _convert(capsys, str(src), "--format", "xyxy", "--out", str(tmp_path / "boxes.csv"))
    assert code == 2
    assert err.strip() == (
        f"error: {src}: line 4: box 80,10,20,60 (image 'c.jpg'): x2 <= x1 (expected x1,y1 top-left and x2,y2 "
        "bottom-right in pixels)"
    )
    assert not (tmp_path / "boxes.csv").exists()


def test_normalised_corners_given_as_pixels_are_refused_with_a_hint(tmp_path, capsys):
    src = tmp_path / "given.csv"
    src.write_text("image,x1,y1,x2,y2\na.jpg,0.1,0.2,0.8,0.9\n")
    code, _, err = _convert(capsys, str(src), "--format", "xyxy", "--region", "fullbody", "--out", "x.csv")
    assert code == 2 and "line 2" in err and "normalised coordinates given as pixels" in err and "--format yolo" in err


def test_bremer_detic_and_coco_files_are_read(tmp_path):
    bremer = tmp_path / "bremer.csv"
    bbox = ["[[10 20 110 90]]", "[[5, 5, 50, 40], [1 2 30 40]]", "[]"]
    conf = ["[0.87]", "[0.5 0.25]", "[]"]
    pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg"], "bbox": bbox, "conf": conf}).to_csv(bremer, index=False)
    table = convert_boxes(bremer, "bremer", region="backfin")
    assert table[["image", "x1", "y1", "x2", "y2", "conf"]].values.tolist() == [
        ["a.jpg", 10.0, 20.0, 110.0, 90.0, 0.87],
        ["b.jpg", 5.0, 5.0, 50.0, 40.0, 0.5],
        ["b.jpg", 1.0, 2.0, 30.0, 40.0, 0.25],
    ]
    assert set(table["region"]) == {"backfin"} and table["where"].tolist()[1] == f"{bremer}: line 3"

    detic = tmp_path / "detic.csv"
    pd.DataFrame({"image": ["a.jpg", "b.jpg"], "box": ["12 14 100 80", ""]}).to_csv(detic, index=False)
    table = convert_boxes(detic, "detic", region="fullbody")
    assert table[["image", "x1", "y2"]].values.tolist() == [["a.jpg", 12.0, 80.0]] and table["conf"].isna().all()

    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "imgs/a.jpg", "width": 120, "height": 100}],
        "categories": [{"id": 3, "name": "backfin"}],
        "annotations": [{"image_id": 1, "category_id": 3, "bbox": [10, 20, 30, 40], "score": 0.9}],
    }))  # fmt: skip
    table = convert_boxes(coco, "coco")
    assert table[["image", "region", "x1", "y1", "x2", "y2", "conf"]].values.tolist() == [
        ["imgs/a.jpg", "backfin", 10.0, 20.0, 40.0, 60.0, 0.9]  # the relative path: card1/ and card2/ differ
    ]
    with pytest.raises(InputError, match="no 'region' column: pass --region"):
        convert_boxes(detic, "detic")


def test_boxes_past_the_edge_are_clipped_within_tolerance_else_refused():
    boxes = pd.DataFrame({"image": ["a.jpg", "a.jpg", "b.jpg"], "region": ["fullbody", "backfin", "fullbody"],
                          "x1": [10, 20, 0], "y1": [10, 5, 0], "x2": [90, 40, 50], "y2": [70, 30, 50]})  # fmt: skip
    sizes = {"a.jpg": (100, 80), "b.jpg": (100, 80)}
    table = validate_boxes(boxes.assign(x2=[101.5, 40, 50]))  # 1.5 px past a 100 px edge: clipped
    checked, report = check_boxes(table, sizes, "given.csv", min_side_px=4)
    assert report.n_clipped == 1 and checked["x2"].tolist() == [100.0, 40.0, 50.0]
    with pytest.raises(InputError, match=r"given.csv: line 3: box 20,5,130,30 \(image 'a.jpg' of a 100x80 photo\): "):
        check_boxes(validate_boxes(boxes.assign(x2=[90, 130, 50])), sizes, "given.csv", min_side_px=4)
    tiny = boxes.assign(x2=[12, 40, 50])
    with pytest.raises(InputError, match=r"line 2: .*smaller than the minimum of 4 px"):
        check_boxes(validate_boxes(tiny), sizes, "given.csv", min_side_px=4)
    kept, report = check_boxes(validate_boxes(tiny), sizes, "detector", min_side_px=4, drop=True)
    assert len(kept) == 2 and report.n_dropped == 1  # a detection too small is dropped, not fatal


def test_validation_names_the_csv_line_even_after_filtering_and_shows_plain_values(tmp_path):
    src = tmp_path / "boxes.csv"
    rows = [f"p{i}.jpg,fullbody,1,1,20,20" for i in range(6)] + ["p6.jpg,fullbody,,1,20,20"]
    src.write_text("image,region,x1,y1,x2,y2\n" + "\n".join(rows) + "\n")
    table = pd.read_csv(src)
    kept = table[table["image"] != "p2.jpg"]  # filtered first, as the stages do
    with pytest.raises(InputError) as err:
        validate_boxes(kept, str(src))
    assert str(err.value) == f"{src}: line 8: x1=empty is not a finite number"


def _photo(path: Path, size=(120, 100)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)


def _coco(tmp_path: Path, images: list, annotations: list) -> Path:
    path = tmp_path / "coco.json"
    path.write_text(
        json.dumps({"images": images, "categories": [{"id": 1, "name": "fullbody"}], "annotations": annotations})
    )
    return path


IMAGE = {"id": 1, "file_name": "a.jpg", "width": 120, "height": 100}
BOX = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40]}
GARBAGE = {
    "detic nan token": ("detic", "image,box\na.jpg,nan 1 50 40\n", "line 2: box='nan 1 50 40': 'nan' is not a finite"),
    "bremer inf token": ("bremer", "image,bbox\na.jpg,[[1 2 inf 40]]\n", "line 2: bbox='[[1 2 inf 40]]': 'inf' is not"),
    "bremer word token": ("bremer", "image,bbox\na.jpg,[[1 2 x 40]]\n", "'x' is not a finite number"),
    "xyxy nan conf": ("xyxy", "image,x1,y1,x2,y2,conf\na.jpg,1,1,50,40,nan\n", "line 2: conf='nan' is not a finite"),
    "coco duplicate image id": ("coco", ([IMAGE, {**IMAGE, "file_name": "b.jpg"}], [BOX]), "images[1]: id 1 is used"),
    "coco fractional image id": ("coco", ([IMAGE], [{**BOX, "image_id": 1.9}]), "image_id 1.9 is not the integer"),
    "coco category name": ("coco", ([IMAGE], [{**BOX, "category_id": "fullbody"}]), "category_id 'fullbody' is not"),
    "coco nan bbox": ("coco", ([IMAGE], [{**BOX, "bbox": [1, 2, "nan", 4]}]), "annotations[0]: bbox [1, 2, 'nan', 4]"),
    "coco fractional image entry": ("coco", ([{**IMAGE, "id": 2.5}], [BOX]), "images[0]: id 2.5 is not an integer"),
}


@pytest.mark.parametrize("case", GARBAGE, ids=list(GARBAGE))
def test_garbage_in_a_box_file_is_refused_naming_file_and_row(tmp_path, capsys, case):
    fmt, content, message = GARBAGE[case]
    if fmt == "coco":
        src = _coco(tmp_path, *content)
    else:
        src = tmp_path / "boxes.csv"
        src.write_text(content)
    code, _, err = _convert(capsys, str(src), "--format", fmt, "--region", "fullbody", "--out", str(tmp_path / "o.csv"))
    assert code == 2 and message in err and str(src) in err, err
    assert not (tmp_path / "o.csv").exists()


def test_yolo_nan_and_fractional_class_are_refused(tmp_path, capsys):
    _photo(tmp_path / "photos/a.jpg")
    for line, message in (("0 0.5 nan 0.2 0.2", "is not 'class cx cy w h"), ("1.9 0.5 0.5 0.2 0.2", "integer class")):
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels/a.txt").write_text(line + "\n")
        code, _, err = _convert(
            capsys,
            str(tmp_path / "labels"),
            "--format",
            "yolo",
            "--images",
            str(tmp_path / "photos"),
            "--out",
            str(tmp_path / "o.csv"),
        )
        assert code == 2 and "labels/a.txt: line 1" in err and message in err, err


def test_a_photo_missing_from_the_images_folders_and_a_nan_min_box_are_refused(tmp_path, capsys):
    _photo(tmp_path / "photos/a.jpg")
    src = tmp_path / "boxes.csv"
    src.write_text("image,region,x1,y1,x2,y2\na.jpg,fullbody,1,1,50,40\nb.jpg,fullbody,1,1,50,40\n")
    out = str(tmp_path / "o.csv")
    code, _, err = _convert(capsys, str(src), "--format", "xyxy", "--images", str(tmp_path / "photos"), "--out", out)
    assert code == 2 and f"{src}: line 3: photo 'b.jpg' is not in" in err, err
    with pytest.raises(SystemExit) as done:
        main(["boxes", "convert", str(src), "--format", "xyxy", "--min-box-px", "nan", "--out", out])
    assert (
        done.value.code == 2 and "argument --min-box-px: 'nan' is not a finite number >= 0" in capsys.readouterr().err
    )


def test_photos_of_one_base_name_in_two_folders_keep_their_own_boxes(tmp_path, capsys):
    photos = tmp_path / "photos"
    _photo(photos / "card1/IMG_0001.jpg", (120, 100))
    _photo(photos / "card2/IMG_0001.jpg", (200, 160))
    images = [
        {**IMAGE, "id": 1, "file_name": "card1/IMG_0001.jpg"},
        {**IMAGE, "id": 2, "file_name": "card2/IMG_0001.jpg"},
    ]
    src = _coco(tmp_path, images, [BOX, {**BOX, "image_id": 2, "bbox": [100, 80, 90, 70]}])
    code, _, err = _convert(
        capsys, str(src), "--format", "coco", "--images", str(photos), "--out", str(tmp_path / "o.csv")
    )
    assert code == 0, err  # the second box fits only the 200x160 photo of card2
    got = pd.read_csv(tmp_path / "o.csv")
    assert got[["image", "x1", "x2"]].values.tolist() == [
        ["card1/IMG_0001.jpg", 10, 60],
        ["card2/IMG_0001.jpg", 100, 190],
    ]

    labels = tmp_path / "labels"
    for card, cx in (("card1", 0.25), ("card2", 0.75)):
        (labels / card).mkdir(parents=True)
        (labels / card / "IMG_0001.txt").write_text(f"1 {cx} 0.5 0.2 0.2\n")
    code, _, err = _convert(
        capsys, str(labels), "--format", "yolo", "--images", str(photos), "--out", str(tmp_path / "y.csv")
    )
    assert code == 0, err
    got = pd.read_csv(tmp_path / "y.csv")
    assert got[["image", "x1"]].values.tolist() == [["card1/IMG_0001.jpg", 18.0], ["card2/IMG_0001.jpg", 130.0]]


def test_several_files_or_a_folder_become_one_boxes_csv(tmp_path, capsys):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_text("image,region,x1,y1,x2,y2\na.jpg,fullbody,1,1,50,40\n")
    (folder / "b.csv").write_text("image,region,x1,y1,x2,y2\nb.jpg,backfin,2,2,30,30\n")
    (folder / "notes.txt").write_text("not boxes")
    for sources in ([str(folder)], [str(folder / "a.csv"), str(folder / "b.csv")]):
        code, printed, err = _convert(capsys, *sources, "--format", "xyxy", "--out", str(tmp_path / "o.csv"))
        assert code == 0 and "2 boxes of 2 photos from 2 files" in printed, err
        assert pd.read_csv(tmp_path / "o.csv")["image"].tolist() == ["a.jpg", "b.jpg"]
    (folder / "b.csv").write_text("image,region,x1,y1,x2,y2\nb.jpg,backfin,2,2,nan,30\n")
    code, _, err = _convert(capsys, str(folder), "--format", "xyxy", "--out", str(tmp_path / "o.csv"))
    assert code == 2 and f"{folder / 'b.csv'}: line 2: x2='nan'" in err, err


def test_a_yolo_label_file_that_is_not_utf8_is_one_line_naming_it(tmp_path, capsys):
    _photo(tmp_path / "photos/a.jpg")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/a.txt").write_bytes("0 0.5 0.5 0.2 0.2 # baleine \xe9t\xe9\n".encode("latin-1"))
    out = str(tmp_path / "o.csv")
    code, _, err = _convert(capsys, str(tmp_path / "labels"), "--format", "yolo", "--images", str(tmp_path / "photos"),
                            "--out", out)  # fmt: skip
    assert code == 2 and "labels/a.txt: not a UTF-8 YOLO label file" in err and "Traceback" not in err, err
