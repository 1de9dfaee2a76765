"""The review pages of real identify runs on the tiny pipeline, in headless Chromium: every query with five
candidate pictures that load; 60 photos in small pages; decide → export → enroll → log → revert; a metadata
sidecar restricting candidates to the query's location."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli.cdp import Browser
from tests.cli.conftest import IdentifyRun, dump_dom, read_table, run_in
from tests.cli.pages import referenced_files
from whale_reid.catalogue.run_folder import verify_run


def _sections(dom: str) -> list[str]:
    return re.findall(r"<section class=\"card query[^\"]*\".*?</section>", dom, flags=re.S)


def _pages(out: Path) -> list[Path]:
    return sorted((out / "review").glob("page-*.html"))


@pytest.fixture(scope="module")
def repo_copy(identified: IdentifyRun, tmp_path_factory) -> Path:
    """A private copy of the pipeline repo (its catalogue is written by these tests)."""
    return Path(shutil.copytree(identified.repo, tmp_path_factory.mktemp("review") / "repo", symlinks=True))


def test_every_query_shows_five_candidate_images_that_load(identified: IdentifyRun, tmp_path: Path) -> None:
    sections = []
    for n, page in enumerate(_pages(identified.out)):
        dom = dump_dom(page, tmp_path / f"profile{n}")
        assert 'data-images-checked="1"' in dom and 'data-loaded="0"' not in dom
        sections += _sections(dom)
    matches = identified.matches
    assert len(sections) == matches["photo"].nunique()
    errors = set(matches.loc[matches["error"] != "", "photo"])
    for section, photo in zip(sections, matches["photo"].drop_duplicates()):
        assert photo.replace("&", "&amp;") in section
        if photo in errors:
            assert "<img" not in section
            continue
        candidates = re.findall(r"<figure class=\"cand\"[^>]*><img [^>]*>", section)
        assert len(candidates) == 5
        assert all('data-loaded="1"' in img for img in candidates)
        rows = matches[matches["photo"] == photo]
        assert (rows["recommendation"] == rows["individual_id"].iloc[0]).all()  # the call is the first answer
        call = re.search(r"<div class=\"call (known|new)\" data-call=\"([^\"]*)\"", section)
        assert call.group(2) == rows["recommendation"].iloc[0]
        assert (call.group(1) == "new") == (call.group(2) == "new_individual")


def test_identify_on_60_photos_writes_small_pages_whose_pictures_all_exist(identified: IdentifyRun, tmp_path):
    survey = tmp_path / "survey"
    tests = sorted((identified.repo / "data/demo/test_images").iterdir())
    for n in range(60):  # the tiny demo has fewer test photos: copies in other folders are photos too
        source = tests[n % len(tests)]
        target = survey / f"copy{n // len(tests)}" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    proc = run_in(identified.repo, "whale-reid", "identify", str(survey), "--out", str(tmp_path / "out"),
                  "--page-size", "25")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    html = [out / "review.html", *_pages(out)]
    assert [p.name for p in html] == ["review.html", "page-0001.html", "page-0002.html", "page-0003.html"]
    assert sum(p.stat().st_size for p in html) <= 1_500_000
    for page in html:
        assert "data:image" not in page.read_text()
        missing = [str(r) for r in referenced_files(page) if not r.is_file()]
        assert not missing, f"{page}: {missing[:3]}"
    verify_run(out)  # the pages and pictures are part of the run's manifest


def test_decide_three_export_enroll_log_and_revert(identified: IdentifyRun, repo_copy: Path, tmp_path: Path) -> None:
    matches = identified.matches
    photos = matches["photo"].drop_duplicates().tolist()[:3]
    real = [matches[(matches["photo"] == p) & (matches["individual_id"] != "new_individual")].iloc[0] for p in photos]
    with Browser(tmp_path / "profile") as browser:
        browser.open(_pages(identified.out)[0].as_uri())
        browser.press("1")  # photo 1: its best real candidate, number 1 on the card
        browser.press("ArrowRight")
        browser.press("n")  # photo 2: a new individual
        browser.type("Fin-7")
        browser.press("Enter")
        browser.press("ArrowRight")
        browser.press("1")
        browser.reload()
        assert browser.js("document.getElementById('counter').textContent").startswith("3 / ")
        csv = browser.js("window.decisionsCsv()")
    assert csv.splitlines() == ["photo,decision,individual_id", f"{photos[0]},match,{real[0]['individual_id']}",
                                f"{photos[1]},new,Fin-7", f"{photos[2]},match,{real[2]['individual_id']}"]  # fmt: skip
    decisions = tmp_path / "decisions.csv"
    decisions.write_text(csv)
    enrolled = run_in(repo_copy, "whale-reid", "enroll", str(decisions), "--identify-dir", str(identified.out),
                      "--reviewer", "Ana")  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr[-2000:]
    log = read_table(repo_copy / "models/catalogue/log.csv")
    assert log[["photo", "action", "reviewer", "version"]].values.tolist() == [
        [photos[0], "match", "Ana", "v0001"], [photos[1], "new", "Ana", "v0001"], [photos[2], "match", "Ana", "v0001"]
    ]  # fmt: skip
    assert (log["identify_run"] == verify_run(identified.out)).all()
    shown = run_in(repo_copy, "whale-reid", "catalogue", "log")
    assert shown.returncode == 0 and shown.stdout.count("Ana") == 3
    reverted = run_in(repo_copy, "whale-reid", "catalogue", "revert", "base", "--reviewer", "Ana")
    assert reverted.returncode == 0, reverted.stderr[-2000:]
    assert (repo_copy / "models/catalogue/CURRENT").read_text().strip() == "base"
    assert read_table(repo_copy / "models/catalogue/log.csv").iloc[-1][["action", "previous"]].tolist() == [
        "revert", "v0001"
    ]  # fmt: skip
    export = run_in(repo_copy, "whale-reid", "catalogue", "export", str(tmp_path / "catalogue.csv"))
    assert export.returncode == 0
    with np.load(repo_copy / "models/gallery/gallery.npz") as base:
        assert len(read_table(tmp_path / "catalogue.csv")) == len(base["labels"])  # the enrolled photos are gone


def test_a_sidecar_with_two_locations_restricts_candidates_to_the_query_location(
    identified: IdentifyRun, repo_copy: Path, tmp_path: Path
) -> None:
    with np.load(repo_copy / "models/gallery/gallery.npz") as gallery:
        ids, labels = gallery["image_ids"].astype(str), gallery["labels"].astype(str)
    individuals = sorted(set(labels))
    north = set(individuals[::2])
    place = ["north" if label in north else "south" for label in labels]
    (repo_copy / "models/catalogue").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": ids, "location": place}).to_csv(repo_copy / "models/catalogue/metadata.csv", index=False)
    tests = sorted((identified.repo / "data/demo/test_images").iterdir())[:4]
    sidecar = tmp_path / "sidecar.csv"
    pd.DataFrame({"photo": [p.name for p in tests[:3]], "encounter": ["E1", "E1", ""],
                  "location": ["north", "north", "south"]}).to_csv(sidecar, index=False)  # fmt: skip
    proc = run_in(repo_copy, "whale-reid", "identify", *map(str, tests), "--out", str(tmp_path / "out"),
                  "--metadata", str(sidecar), "--restrict", "location")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    matches = read_table(tmp_path / "out/matches.csv")
    for photo, allowed, text in zip(tests, (north, north, set(individuals) - north, None),
                                    ("location=north", "location=north", "location=south", "")):  # fmt: skip
        rows = matches[matches["photo"] == str(photo)]
        assert (rows["filters"] == text).all()
        if allowed is not None:
            assert set(rows["individual_id"]) - {"new_individual"} <= allowed
    first, second = (matches[matches["photo"] == str(p)]["individual_id"].tolist() for p in tests[:2])
    assert first == second  # one encounter, answered together
    page = (tmp_path / "out/review/page-0001.html").read_text()
    assert "candidates: location=north" in page and "candidates: location=south" in page
    assert "encounter E1 (2 photos)" in page and page.count("<section class='card query'") == 3
