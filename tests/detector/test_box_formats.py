"""`whale-reid boxes convert` and the box checks every box source passes (converted, given, detected)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
