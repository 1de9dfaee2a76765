"""`whale-reid enroll` on a copy of the tiny pipeline: new animals found again, idempotence, bad rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli.conftest import IdentifyRun, demo_truth, dump_dom, read_table, run_in

HOSTILE_ID = "Nick<script>document.title='pwned'</script>"


@pytest.fixture(scope="module")
def enrolled(identified: IdentifyRun, tmp_path_factory) -> dict:
    """A repo copy where one test photo of an unknown animal was enrolled as new and one matched."""
    tmp = tmp_path_factory.mktemp("enroll")
    repo = tmp / "repo"
    shutil.copytree(identified.repo, repo, symlinks=True)
    truth = demo_truth(repo)
    new_photo = "data/demo/test_images/" + truth.loc[~truth["known"], "image"].iloc[0]
    known = truth[truth["known"]].iloc[0]
    decisions = tmp / "decisions.csv"
    pd.DataFrame(
        {"photo": [new_photo, "data/demo/test_images/" + known["image"]], "decision": ["new", "match"],
         "individual_id": [HOSTILE_ID, known["individual_id"]]}
    ).to_csv(decisions, index=False)  # fmt: skip
    first = run_in(repo, "whale-reid", "enroll", str(decisions), "--identify-dir", str(identified.out))
    assert first.returncode == 0, first.stderr[-2000:]
    return {"repo": repo, "tmp": tmp, "decisions": decisions, "new_photo": repo / new_photo, "known": known}


def test_enroll_writes_a_new_complete_version_and_keeps_models_gallery(enrolled: dict, identified: IdentifyRun):
    repo = enrolled["repo"]
    assert (repo / "models/catalogue/CURRENT").read_text().strip() == "v0001"
    with np.load(repo / "models/catalogue/versions/v0001/gallery.npz") as grown:
        labels = grown["labels"]
    for name in ("gallery.npz", "gallery.json"):  # the predict stage's output (owned by DVC) is untouched
        assert (repo / "models/gallery" / name).read_bytes() == (identified.repo / "models/gallery" / name).read_bytes()
    with np.load(repo / "models/gallery/gallery.npz") as base:
        assert len(labels) == len(base["labels"]) + 2
    assert list(labels[-2:]) == [HOSTILE_ID, enrolled["known"]["individual_id"]]
    table = read_table(repo / "models/catalogue/versions/v0001/enrolled.csv")
    assert table["decision"].tolist() == ["new", "match"]


def test_enroll_twice_changes_nothing(enrolled: dict, identified: IdentifyRun) -> None:
    repo = enrolled["repo"]
    before = (repo / "models/catalogue/versions/v0001/gallery.npz").read_bytes()
    again = run_in(repo, "whale-reid", "enroll", str(enrolled["decisions"]), "--identify-dir", str(identified.out))
    assert again.returncode == 0 and "0 photos enrolled, 2 already there" in again.stdout
    assert sorted(p.name for p in (repo / "models/catalogue/versions").iterdir()) == ["v0001"]
    assert (repo / "models/catalogue/CURRENT").read_text().strip() == "v0001"
    assert (repo / "models/catalogue/versions/v0001/gallery.npz").read_bytes() == before


def test_identify_finds_the_enrolled_animal_at_rank_1(enrolled: dict) -> None:
    repo, tmp = enrolled["repo"], enrolled["tmp"]
    copy = tmp / "later_survey" / "resighting.jpg"
    copy.parent.mkdir()
    shutil.copy(enrolled["new_photo"], copy)
    proc = run_in(repo, "whale-reid", "identify", str(copy), "--out", str(tmp / "later"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    top = read_table(tmp / "later/matches.csv").iloc[0]
    assert top["individual_id"] == HOSTILE_ID and float(top["similarity"]) > 0.9999
    dom = dump_dom(tmp / "later/review/page-0001.html", tmp / "chromium")
    assert "<title>whale-reid · review matches · page 1</title>" in dom  # the id's script never ran
    assert "Nick&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("x.jpg,maybe,id1", "line 2 (photo 'x.jpg'): decision must be 'match' or 'new'"),
        ("x.jpg,match,two words", "line 2 (photo 'x.jpg'): individual_id must be a non-empty id without spaces"),
        ("x.jpg,new,someone", "line 2 (photo 'x.jpg'): not among the identify run's photos"),
    ],
)
def test_bad_decisions_name_the_row(enrolled: dict, identified: IdentifyRun, tmp_path: Path, row, message) -> None:
    bad = tmp_path / "decisions.csv"
    bad.write_text("photo,decision,individual_id\n" + row + "\n")
    proc = run_in(enrolled["repo"], "whale-reid", "enroll", str(bad), "--identify-dir", str(identified.out))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: {bad}: {message}")
