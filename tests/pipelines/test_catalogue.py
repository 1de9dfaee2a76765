"""A researcher's own catalogue through `prepare` and `crop`: folders or CSV, encounters kept whole, no boxes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.pipelines.conftest import run_stage, write_params
from whale_core import InputError
from whale_reid.common.params import DataParams, check_params
from whale_reid.dataset.folds import PrepareConfig
from whale_reid.stages.prepare import prepare_tables

WHOLE_PHOTOS = {"box_source": "none", "detector_stages": [], "box_input": "data/prepared"}


def _noise(path, seed: int, shift: int = 0) -> None:
    """A noise photo; the same seed with a small brightness `shift` is a near-duplicate (same difference hash)."""
    pixels = np.random.default_rng(seed).integers(20, 230, (30, 40, 3)).astype(np.int16) + shift
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=95)


def _folders(raw, n_individuals: int = 3, n_photos: int = 4) -> list[str]:
    photos = [f"ind{i}/p{k}.jpg" for i in range(n_individuals) for k in range(n_photos)]
    for seed, photo in enumerate(photos):
        _noise(raw / photo, seed)
    return photos


def _prepare(raw, **data):
    return prepare_tables(raw, PrepareConfig(n_folds=3, seed=1), DataParams(raw_dir=str(raw), **data))


def test_folders_and_csv_give_identical_prepared_tables(tmp_path):
    folders, listed = tmp_path / "folders", tmp_path / "listed"
    photos = _folders(folders)
    _folders(listed)
    rows = [f"{p},{p.split('/')[0]}" for p in reversed(photos)]  # another order: the tables are sorted by photo
    (listed / "catalogue.csv").write_text("photo,individual_id\n" + "\n".join(rows) + "\n")
    by_folders, test_f, summary_f = _prepare(folders)
    by_csv, test_c, summary_c = _prepare(listed)
    pd.testing.assert_frame_equal(by_folders, by_csv)
    assert summary_f["layout"] == "folders" and summary_c["layout"] == "csv"
    assert by_folders["image"].tolist() == sorted(photos) and (by_folders["photo"] == by_folders["image"]).all()
    assert set(by_folders["species"]) == {"unknown"} and test_f.empty and test_c.empty


def test_species_folders_and_the_optional_columns_are_kept(tmp_path):
    raw = tmp_path / "raw"
    for seed, photo in enumerate(["Humpback Whale/hw1/a.jpg", "Humpback Whale/hw1/b.jpg", "orca/o7/c.jpg"]):
        _noise(raw / photo, seed)
    train, _, _ = _prepare(raw)
    assert dict(zip(train["individual_id"], train["species"])) == {"hw1": "humpback_whale", "o7": "orca"}

    (raw / "sub").mkdir()
    (raw / "sub/list.csv").write_text(
        "photo,individual_id,species,encounter,date,side,location,notes\n"
        "../orca/o7/c.jpg,o7,Orca,e1,2021-06-03,left,Haro Strait,x\n"
        "../Humpback Whale/hw1/a.jpg,hw1,,e2,2021-06-04 10:22,right,,y\n"
    )
    train, _, _ = _prepare(raw, layout="csv", catalogue_csv="sub/list.csv")
    assert list(train.columns) == [
        "image",
        "photo",
        "species",
        "individual_id",
        "encounter",
        "date",
        "side",
        "location",
        "fold",
    ]
    assert train.iloc[1][["image", "species", "side", "location"]].tolist() == [
        "orca/o7/c.jpg",
        "orca",
        "left",
        "Haro Strait",
    ]
    assert train.iloc[0]["species"] == "unknown"


BAD_ROWS = {
    "missing file": ("ind0/p0.jpg,a\nind0/gone.jpg,a\n", "catalogue.csv line 3: photo 'ind0/gone.jpg' not found"),
    "empty id": ("ind0/p0.jpg,a\nind0/p1.jpg,\n", "catalogue.csv line 3: empty individual_id"),
    "control character": ("ind0/p0.jpg,a\x07b\n", "catalogue.csv line 2: individual_id 'a\\x07b' holds a control"),
    "duplicate photo": ("ind0/p0.jpg,a\nind0/p1.jpg,a\n./ind0/p0.jpg,a\n", "catalogue.csv line 4: photo listed twice"),
    "escaping path": ("../elsewhere.jpg,a\n", "catalogue.csv line 2: photo '../elsewhere.jpg' is not a path inside"),
    "reserved id": ("ind0/p0.jpg,new_individual\n", "catalogue.csv line 2: individual_id 'new_individual' is reserved"),
    "space in id": ("ind0/p0.jpg,HW 12\n", "catalogue.csv line 2: individual_id holds whitespace"),
}


@pytest.mark.parametrize("case", BAD_ROWS, ids=list(BAD_ROWS))
def test_a_bad_catalogue_row_is_refused_naming_file_and_line(tmp_path, case):
    rows, message = BAD_ROWS[case]
    raw = tmp_path / "raw"
    _folders(raw, n_individuals=1)
    (raw / "catalogue.csv").write_text("photo,individual_id\n" + rows)
    with pytest.raises(InputError, match=None) as err:
        _prepare(raw)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(",side\nind0/p0.jpg,a,upside\n", "line 2: side is not one of"), (",date\nind0/p0.jpg,a,3 June\n", "not an ISO")],
)
def test_bad_side_or_date_is_refused(tmp_path, extra, message):
    raw = tmp_path / "raw"
    _folders(raw, n_individuals=1)
    (raw / "catalogue.csv").write_text("photo,individual_id" + extra)
    with pytest.raises(InputError, match=message):
        _prepare(raw)


def test_folders_at_mixed_depths_or_an_individual_under_two_species_are_refused(tmp_path):
    raw = tmp_path / "raw"
    _noise(raw / "a/p.jpg", 0)
    _noise(raw / "s/b/p.jpg", 1)
    with pytest.raises(InputError, match="photos at different depths"):
        _prepare(raw)
    (raw / "a/p.jpg").unlink()
    _noise(raw / "t/b/q.jpg", 2)  # 'b' under species s and t: the second level is not individuals
    with pytest.raises(InputError, match="folder 'b' is under several species folders"):
        _prepare(raw)


def _folds_per(train: pd.DataFrame, key: pd.Series) -> pd.Series:
    return train.groupby(key)["fold"].nunique()


def test_photos_of_one_encounter_never_sit_in_two_folds(tmp_path):
    raw = tmp_path / "raw"
    photos = _folders(raw, n_individuals=4, n_photos=6)
    encounter = [f"e{i // 3}" for i in range(len(photos))]  # runs of 3 photos of one individual
    encounter[5] = encounter[6] = "pod"  # an encounter with two individuals (ind0's and ind1's photos)
    dates = ["2021-06-0" + str(1 + i % 2) for i in range(len(photos))]
    table = pd.DataFrame(
        {"photo": photos, "individual_id": [p.split("/")[0] for p in photos], "encounter": encounter, "date": ""}
    )
    table.to_csv(raw / "catalogue.csv", index=False)
    train, _, summary = _prepare(raw)
    assert (_folds_per(train, train["encounter"]) == 1).all()
    assert train.loc[train["encounter"] == "pod", "individual_id"].nunique() == 2
    assert summary["encounters"] == len(set(encounter))  # one group per encounter value, "pod" across two animals

    table.assign(encounter="", date=dates).to_csv(raw / "catalogue.csv", index=False)
    train, _, _ = _prepare(raw)  # same individual and day: one encounter
    assert (_folds_per(train, train["individual_id"] + train["date"]) == 1).all()
    assert train.groupby("individual_id")["fold"].nunique().min() == 2  # yet each individual spans two folds


def test_near_duplicate_photos_share_a_fold_without_encounter_or_date(tmp_path):
    raw = tmp_path / "raw"
    for individual in range(3):
        for burst in range(3):  # 3 bursts of 3 near-identical frames each
            for frame in range(3):
                _noise(raw / f"ind{individual}/b{burst}_{frame}.jpg", 10 * individual + burst, shift=2 * frame)
    train, _, summary = _prepare(raw)
    burst = train["image"].str.extract(r"^(ind\d/b\d)_")[0]
    assert summary["encounters"] == 9
    assert (_folds_per(train, burst) == 1).all()
    assert (train.groupby("individual_id")["fold"].nunique() == 3).all()
    apart = prepare_tables(raw, PrepareConfig(n_folds=3, seed=1, near_duplicate_bits=None), DataParams())[0]
    assert (_folds_per(apart, burst) > 1).any()  # the oracle: without the hash, bursts are dealt apart


def test_box_source_alone_is_refused_at_once_naming_the_keys():
    with pytest.raises(
        InputError,
        match=r"crop.box_source: none needs crop.detector_stages: \[\], "
        r"crop.box_input: data/prepared",
    ):
        check_params({"crop": {"box_source": "none"}})
    with pytest.raises(InputError, match=r"boxes_csv needs crop.detector_stages: \[\], crop.box_input: b.csv"):
        check_params({"crop": {"box_source": "boxes_csv", "boxes_csv": "b.csv"}})
    check_params({"crop": WHOLE_PHOTOS})
    check_params(
        {"crop": {"box_source": "boxes_csv", "boxes_csv": "b.csv", "detector_stages": [], "box_input": "b.csv"}}
    )


def test_a_catalogue_prepares_and_crops_whole_photos_with_no_boxes(tmp_path):
    photos = _folders(tmp_path / "raw")
    matching = {"enabled": True, "regions": ["fullbody"], "outline_regions": []}
    write_params(tmp_path, {"data": {"raw_dir": "raw"}, "prepare": {"n_folds": 3}, "crop": WHOLE_PHOTOS,
                            "match": matching})  # fmt: skip
    prepared = run_stage("prepare", tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    assert (tmp_path / "data/prepared/test.csv").read_text() == "image,photo\n"
    crop = run_stage("crop", tmp_path)
    assert crop.returncode == 0, crop.stderr
    assert "had no box" not in crop.stderr  # whole photos were asked for: no warning
    boxes = pd.read_csv(tmp_path / "data/crops/boxes.csv")
    assert (boxes["source"] == "full_image").all() and len(boxes) == 2 * len(photos)
    first = Image.open(tmp_path / "data/crops/fullbody/train/ind0/p0.jpg")
    assert first.size == Image.open(tmp_path / "raw/ind0/p0.jpg").size  # the whole photo
    metrics = json.loads((tmp_path / "metrics/crop.json").read_text())
    assert metrics["fallback_share_train_fullbody"] == 1.0 and metrics["box_source"] == "none"
    features = run_stage("local_features", tmp_path)  # a catalogue has no test photos: said, not a NaN
    assert features.returncode == 0, features.stderr
    assert "fullbody test: no photos" in features.stderr and "Warning" not in features.stderr


def test_given_boxes_match_the_relative_path_and_a_high_fallback_share_warns(tmp_path):
    raw = tmp_path / "raw"
    for seed, photo in enumerate(["card1/IMG_0001.jpg", "card2/IMG_0001.jpg", "card2/IMG_0002.jpg"]):
        _noise(raw / photo, seed)
    (tmp_path / "given.csv").write_text("image,region,x1,y1,x2,y2\ncard1/IMG_0001.jpg,fullbody,2,3,22,18\n")
    given = {"box_source": "boxes_csv", "boxes_csv": "given.csv", "detector_stages": [], "box_input": "given.csv"}
    write_params(tmp_path, {"data": {"raw_dir": "raw"}, "prepare": {"n_folds": 2}, "crop": {**given, "margin_frac": 0}})
    assert run_stage("prepare", tmp_path).returncode == 0
    crop = run_stage("crop", tmp_path)
    assert crop.returncode == 0, crop.stderr
    boxes = pd.read_csv(tmp_path / "data/crops/boxes.csv").set_index(["image", "region"])
    assert boxes.loc[("card1/IMG_0001.jpg", "fullbody"), "source"] == "boxes_csv"
    assert boxes.loc[("card2/IMG_0001.jpg", "fullbody"), "source"] == "full_image"  # same base name, no box
    assert "66.7% of the train fullbody crops had no box" in crop.stderr
    metrics = json.loads((tmp_path / "metrics/crop.json").read_text())
    assert metrics["fallback_share_train_fullbody"] == pytest.approx(2 / 3)
