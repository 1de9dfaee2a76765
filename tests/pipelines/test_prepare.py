"""The `prepare` stage, run for real as a subprocess: good layouts, folds, and every bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.pipelines.conftest import run_stage, write_params
from whale_reid.dataset.folds import assign_folds


def test_prepare_writes_folds_and_normalised_species(kaggle_workdir):
    proc = run_stage("prepare", kaggle_workdir)
    assert proc.returncode == 0, proc.stderr
    train = pd.read_csv(kaggle_workdir / "data/prepared/train.csv")
    test = pd.read_csv(kaggle_workdir / "data/prepared/test.csv")
    assert list(train.columns) == ["image", "species", "individual_id", "fold"]
    assert set(train["species"]) == {"bottlenose_dolphin", "beluga", "killer_whale"}
    assert list(test.columns) == ["image"] and len(test) == 3
    assert set(train["fold"]) == {0, 1, 2}


def test_assign_folds_spreads_each_individual_and_balances():
    labels = ["a"] * 7 + ["b"] * 3 + ["c"] + ["d"] + ["e"] + ["f"] * 2
    folds = assign_folds(labels, n_folds=3, seed=0)
    frame = pd.DataFrame({"label": labels, "fold": folds})
    per_label = frame.groupby("label")["fold"].agg(lambda f: np.bincount(f, minlength=3).tolist())
    for label, counts in per_label.items():
        n = labels.count(label)
        assert max(counts) - min(counts) <= 1, (label, counts)  # as even as possible
        assert sum(counts) == n
    sizes = np.bincount(folds, minlength=3)
    assert sizes.max() - sizes.min() <= 1
    np.testing.assert_array_equal(folds, assign_folds(labels, n_folds=3, seed=0))


def _edit_train_csv(workdir, edit):
    path = workdir / "raw/train.csv"
    path.write_text(edit(path.read_text()))


BAD_CSV_CASES = {
    "missing column": (lambda t: t.replace("individual_id", "whale"), "missing column 'individual_id'"),
    "empty csv": (lambda t: "", "empty CSV"),
    "header only": (lambda t: t.splitlines()[0] + "\n", "no rows"),
    "duplicate image": (lambda t: t + "train00.jpg,beluga,id9\n", "duplicate image name 'train00.jpg'"),
    "missing image": (lambda t: t + "nothere.jpg,beluga,id9\n", "'nothere.jpg' is listed but not in"),
    "escaping name": (lambda t: t + "../secret.jpg,beluga,id9\n", "would escape the images folder"),
    "absolute name": (lambda t: t + "/etc/passwd,beluga,id9\n", "is an absolute path"),
    "missing value": (lambda t: t + "train07b.jpg,,id9\n", "line 10: empty value in column 'species'"),
    "reserved id": (lambda t: t + "train07.jpg,beluga,new_individual\n", "'new_individual' is reserved"),
    "space in id": (
        lambda t: t.replace("train01.jpg,beluga,id1", "train01.jpg,beluga,id 7"),
        "train.csv line 3: individual_id 'id 7' holds whitespace",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV_CASES))
def test_bad_train_csv_is_one_clear_line(kaggle_workdir, case):
    edit, message = BAD_CSV_CASES[case]
    if case == "reserved id":
        _edit_train_csv(kaggle_workdir, lambda t: "\n".join(t.splitlines()[:-1]) + "\n")
    _edit_train_csv(kaggle_workdir, edit)
    proc = run_stage("prepare", kaggle_workdir)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in proc.stderr, proc.stderr
    assert not (kaggle_workdir / "data/prepared/train.csv").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"GIF89a not really", "not an image file"), ("truncate", "corrupt or truncated")],
)
def test_broken_photo_is_named(kaggle_workdir, content, message):
    photo = kaggle_workdir / "raw/train_images/train03.jpg"
    if content == "truncate":
        Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(photo, quality=95)
        content = photo.read_bytes()[:400]
    photo.write_bytes(content)
    proc = run_stage("prepare", kaggle_workdir)
    assert proc.returncode == 2
    assert "train03.jpg" in proc.stderr and message in proc.stderr and "Traceback" not in proc.stderr


def test_valid_odd_photos_and_csv_dialects_pass(kaggle_workdir):
    images = kaggle_workdir / "raw/train_images"
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    rgb.convert("CMYK").save(images / "train00.jpg")
    rgb.convert("L").save(images / "train01.jpg")
    rgb.save(images / "train02.jpg", format="PNG")  # PNG bytes behind a .jpg name
    exif = Image.Exif()
    exif[0x0112] = 8
    rgb.save(images / "train03.jpg", exif=exif)
    (images / "a whale é.jpg").write_bytes((images / "train04.jpg").read_bytes())
    text = (kaggle_workdir / "raw/train.csv").read_text()
    text = (
        text.replace("image,species,individual_id", "image,species,individual_id,extra") + "a whale é.jpg,beluga,id1\n"
    )
    lines = [line + ",x" if i else line for i, line in enumerate(text.splitlines())]
    lines.append(lines[1])  # an exact duplicate row is dropped (documented fallback)
    (kaggle_workdir / "raw/train.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    proc = run_stage("prepare", kaggle_workdir)
    assert proc.returncode == 0, proc.stderr
    train = pd.read_csv(kaggle_workdir / "data/prepared/train.csv")
    assert len(train) == 9 and "a whale é.jpg" in set(train["image"]) and "extra" not in train.columns


def test_unknown_params_key_is_named(kaggle_workdir):
    write_params(kaggle_workdir, {"data": {"raw_dir": "raw"}, "prepare": {"n_fold": 3}})
    proc = run_stage("prepare", kaggle_workdir)
    assert proc.returncode == 2 and "unknown key 'n_fold' in params section 'prepare'" in proc.stderr


def test_empty_test_set_is_allowed(kaggle_workdir):
    (kaggle_workdir / "raw/sample_submission.csv").write_text("image,predictions\n")
    proc = run_stage("prepare", kaggle_workdir)
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(kaggle_workdir / "data/prepared/test.csv").empty
