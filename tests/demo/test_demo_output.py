"""The rendered demo folder: Kaggle layout, exact boxes, long tail, new individuals, no identity leaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from whale_core import NEW_INDIVIDUAL, InputError, load_rgb
from whale_reid.demo import TINY_DEMO, generate_demo, render_contact_sheet

KAGGLE_TYPOS = {"bottlenose_dolpin", "kiler_whale", "globis", "pilot_whale"}


def _tables(raw):
    names = ("train", "test_labels", "sample_submission", "boxes")
    return {name: pd.read_csv(raw / f"{name}.csv") for name in names}


def _sizes(raw, tables):
    rows = [("train", i) for i in tables["train"]["image"]] + [("test", i) for i in tables["test_labels"]["image"]]
    return {image: Image.open(raw / f"{split}_images" / image).size for split, image in rows}


def test_layout_columns_and_cross_references(tiny_demo):
    raw, summary = tiny_demo
    t = _tables(raw)
    assert list(t["train"].columns) == ["image", "species", "individual_id"]
    assert list(t["test_labels"].columns) == ["image", "individual_id", "species"]
    assert list(t["sample_submission"].columns) == ["image", "predictions"]
    assert list(t["boxes"].columns) == ["image", "region", "x1", "y1", "x2", "y2"]
    assert sorted(p.name for p in (raw / "train_images").iterdir()) == sorted(t["train"]["image"])
    assert sorted(p.name for p in (raw / "test_images").iterdir()) == sorted(t["test_labels"]["image"])
    assert set(t["sample_submission"]["image"]) == set(t["test_labels"]["image"])
    assert (t["sample_submission"]["predictions"].str.split().str.len() == 5).all()
    assert (len(t["train"]), len(t["test_labels"])) == (summary.n_train_photos, summary.n_test_photos)
    assert t["train"]["individual_id"].str.fullmatch(r"[0-9a-f]{12}").all()
    assert t["train"]["image"].str.fullmatch(r"[0-9a-f]{14}\.jpg").all()


def test_every_image_decodes_and_has_both_boxes_inside_it(tiny_demo):
    raw, _ = tiny_demo
    t = _tables(raw)
    sizes = _sizes(raw, t)
    boxes = t["boxes"]
    regions = boxes.groupby("image")["region"].apply(lambda r: ",".join(sorted(r)))
    assert (regions == "backfin,fullbody").all()
    assert set(boxes["image"]) == set(sizes)
    width = boxes["image"].map(lambda i: sizes[i][0])
    height = boxes["image"].map(lambda i: sizes[i][1])
    assert ((boxes.x1 >= 0) & (boxes.y1 >= 0) & (boxes.x2 <= width) & (boxes.y2 <= height)).all()
    assert ((boxes.x2 - boxes.x1 >= 4) & (boxes.y2 - boxes.y1 >= 4)).all()
    wide = boxes.pivot(index="image", columns="region", values=["x1", "y1", "x2", "y2"])
    fin_in_body = (wide["x1", "backfin"] >= wide["x1", "fullbody"]) & (wide["x2", "backfin"] <= wide["x2", "fullbody"])
    assert fin_in_body.all()  # the fin is part of the visible animal
    for split, image in [("train", t["train"]["image"].iloc[0]), ("test", t["test_labels"]["image"].iloc[0])]:
        assert load_rgb(raw / f"{split}_images" / image).size == sizes[image]


def test_long_tail_and_new_individual_share(tiny_demo):
    raw, summary = tiny_demo
    t = _tables(raw)
    truth = t["test_labels"]
    known = truth[truth["individual_id"] != NEW_INDIVIDUAL]
    assert set(known["individual_id"]) <= set(t["train"]["individual_id"])
    n_test, n_all = len(truth), len(truth) + len(t["train"])
    assert abs(n_test / n_all - TINY_DEMO.test_fraction) < 0.05
    assert abs(summary.test_new_share - TINY_DEMO.new_individual_fraction) < 0.08
    assert summary.n_new_test_photos == (truth["individual_id"] == NEW_INDIVIDUAL).sum() > 0
    assert summary.n_singletons == pytest.approx(TINY_DEMO.singleton_fraction * TINY_DEMO.n_individuals, abs=2)
    photos = t["train"]["individual_id"].value_counts()
    assert photos.max() > 2 and (photos <= 2).sum() > 0


def test_species_labels_use_catalogue_names_and_a_few_kaggle_typos(tiny_demo):
    raw, summary = tiny_demo
    t = _tables(raw)
    labels = set(t["train"]["species"])
    typos = labels & KAGGLE_TYPOS
    assert typos == KAGGLE_TYPOS  # the first three species carry all four typos
    assert 0 < summary.n_typo_rows < 0.2 * len(t["train"])
    assert set(t["test_labels"]["species"]) <= labels - KAGGLE_TYPOS


def _f_statistic(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way ANOVA F: between-group over within-group variance (about 1 when groups do not matter)."""
    frame = pd.DataFrame({"v": values, "g": groups})
    stats = frame.groupby("g")["v"].agg(["mean", "count", "var"])
    grand = values.mean()
    between = (stats["count"] * (stats["mean"] - grand) ** 2).sum() / (len(stats) - 1)
    within = ((stats["count"] - 1) * stats["var"]).sum() / (len(values) - len(stats))
    return float(between / within)


def test_file_names_and_image_sizes_carry_no_identity(tiny_demo):
    raw, _ = tiny_demo
    t = _tables(raw)
    train = t["train"]
    for ident in set(train["individual_id"]) | set(train["species"]):
        assert not train["image"].str.contains(ident, regex=False).any()
    sizes = _sizes(raw, t)
    several = train[train["individual_id"].map(train["individual_id"].value_counts()) >= 3]
    widths = several["image"].map(lambda i: sizes[i][0]).to_numpy(float)
    aspects = several["image"].map(lambda i: sizes[i][1] / sizes[i][0]).to_numpy(float)
    # With 24 animals and ~80 photos an F above 3 would be very unlikely if size ignored identity.
    assert _f_statistic(widths, several["individual_id"].to_numpy()) < 3
    assert _f_statistic(aspects, several["individual_id"].to_numpy()) < 3


def test_same_seed_is_byte_identical_and_another_seed_differs(tiny_demo, tmp_path):
    raw, _ = tiny_demo
    again = tmp_path / "again"
    generate_demo(TINY_DEMO, again)
    files = sorted(p.relative_to(raw) for p in raw.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (raw / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    generate_demo(TINY_DEMO.replace(seed=TINY_DEMO.seed + 1, n_individuals=8), other)
    assert (other / "train.csv").read_bytes() != (raw / "train.csv").read_bytes()


def test_refuses_a_folder_that_already_holds_outputs(tiny_demo):
    raw, _ = tiny_demo
    with pytest.raises(InputError, match="train.csv: already exists"):
        generate_demo(TINY_DEMO, raw)


def test_contact_sheet_is_a_grid_of_the_photos(tiny_demo, tmp_path):
    raw, _ = tiny_demo
    out = render_contact_sheet(raw, tmp_path / "sheet.png", n=6, columns=3)
    with Image.open(out) as sheet:
        assert sheet.size == (3 * 256, 2 * (180 + 30))
        assert np.asarray(sheet).std() > 10  # photos were pasted, not a blank page
