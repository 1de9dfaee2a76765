"""The real-photo survey scripts (benchmarks/real_photos): a set laid out as a catalogue plus a survey, split by
sighting, on a small set of clips written here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

SCRIPTS = Path(__file__).resolve().parents[2] / "benchmarks" / "real_photos"


@pytest.fixture(scope="module")
def holstein(tmp_path_factory) -> Path:
    """12 cows × 4 clips × 3 frames, named as the set names them (three naming schemes)."""
    root = tmp_path_factory.mktemp("set")
    rng = np.random.default_rng(0)
    names = [
        lambda c, f: f"2025040{c + 1}093214_2025040{c + 1}093754_{f:04d}_cls0.jpg",
        lambda c, f: f"J4{c}_2025.03.2{c}09_37_33_manual_20250417_12005263_{f:06d}_obj0_cls0.jpg",
        lambda c, f: f"41{c}-1-{c + 3}-{f}({f}).jpg",
    ]
    for cow in range(12):
        folder = root / "datasets_v2" / f"99823000000{cow:04d}"
        folder.mkdir(parents=True)
        for clip in range(4):
            for frame in range(3):
                pixels = rng.integers(0, 255, (24, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / names[cow % 3](clip, frame))
    return root


def _prepare(images: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPTS / "prepare_holstein.py"), "--images", str(images), "--out", str(out),
           "--per-individual", "9", "--new-share", "0.2", "--test-share", "0.3"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_a_sighting_never_sits_on_both_sides(holstein, tmp_path):
    done = _prepare(holstein, tmp_path / "run")
    assert done.returncode == 0, done.stderr
    catalogue = pd.read_csv(tmp_path / "run/catalogue/catalogue.csv", dtype=str)
    truth = pd.read_csv(tmp_path / "run/survey_truth.csv", dtype=str)
    assert not set(catalogue["encounter"]) & set(truth["encounter"])
    assert catalogue["encounter"].str.split("_").str.len().ge(2).all()  # clips read from the names, not "other"
    new = truth["individual_id"] == "new_individual"
    held_out = {Path(s).parent.name for s in truth.loc[new, "source"]}
    assert new.any() and not held_out & set(catalogue["individual_id"])  # new animals are absent from train
    assert set(truth.loc[~new, "individual_id"]) <= set(catalogue["individual_id"])
    assert all((tmp_path / "run/catalogue" / p).is_file() for p in catalogue["photo"])
    assert sorted(p.name for p in (tmp_path / "run/survey").iterdir()) == sorted(truth["photo"])
    assert catalogue.groupby("individual_id").size().max() <= 9
    metadata = pd.read_csv(tmp_path / "run/survey_metadata.csv", dtype=str)
    assert metadata["encounter"].str.fullmatch(r"s\d{4}").all()  # the sighting ids tell no animal
    assert metadata.groupby("encounter")["photo"].apply(lambda p: truth.set_index("photo").loc[p, "encounter"]
                                                          .nunique()).eq(1).all()  # fmt: skip


def test_an_existing_out_folder_is_refused_untouched(holstein, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = _prepare(holstein, out)
    assert done.returncode != 0 and "exists" in done.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_folder_without_the_set_is_named(tmp_path):
    done = _prepare(tmp_path, tmp_path / "run")
    assert done.returncode != 0 and "no photos under datasets_v2" in done.stderr
    assert not (tmp_path / "run").exists()


def test_answers_are_found_by_the_path_identify_gave(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("score_identify", SCRIPTS / "score_identify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    matches = pd.DataFrame({
        "photo": ["/runs/survey/q0001.jpg"] * 2 + ["/runs/survey/q0002.jpg"],
        "rank": [1, 2, 1], "individual_id": ["a", "b", "new_individual"],
    })  # fmt: skip
    truth = pd.DataFrame({"photo": ["q0001.jpg", "q0002.jpg"], "individual_id": ["b", "new_individual"]})
    got = module.score(matches, truth)
    assert got["unanswered"] == 0 and got["map5"] == pytest.approx((0.5 + 1.0) / 2) and got["top1_known"] == 0.0
