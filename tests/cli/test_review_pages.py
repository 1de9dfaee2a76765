"""The review pages on a synthetic run (seconds, no pipeline): small pages with pictures as files, and a reviewer's
session in headless Chromium driven by real key presses over the DevTools pipe (`tests/cli/cdp.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.cdp import Browser
from tests.cli.pages import referenced_files
from tests.cli.synthetic import REGION, RULE, synthetic_run, write_synthetic_pages
from whale_reid.review.pages import REVIEW_DIR, write_review
from whale_reid.review.views import GalleryPhotos, ImageFolder, build_views


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    return write_synthetic_pages(tmp_path_factory.mktemp("pages"), n_photos=60, page_size=25)


def test_pages_are_small_and_every_picture_they_reference_exists(pages: Path) -> None:
    html = sorted(pages.rglob("*.html"), key=lambda p: (len(p.parts), p))
    assert [p.relative_to(pages).as_posix() for p in html] == [
        "review.html", "review/page-0001.html", "review/page-0002.html", "review/page-0003.html"
    ]  # fmt: skip
    assert sum(p.stat().st_size for p in html) <= 1_500_000
    assert not any("data:image" in p.read_text() for p in html)
    for page in html:
        refs = referenced_files(page)
        assert refs, page
        missing = [str(r) for r in refs if not r.is_file()]
        assert not missing, f"{page}: {missing[:3]}"
    first = (pages / "review/page-0001.html").read_text()
    assert first.count("<section class='card query'") == 25 and "'../crops/fullbody/query/" in first


def _state(browser: Browser) -> dict:
    return browser.js(
        "({counter: document.getElementById('counter').textContent, position: location.hash,"
        " active: document.activeElement.tagName + ':' + (document.activeElement.type || ''),"
        " picked: Array.from(document.querySelectorAll('section.query')).map("
        "   s => (s.querySelector('input[type=radio]:checked') || {}).value),"
        " csv: window.decisionsCsv()})"
    )


def test_decisions_survive_a_reload_undo_clears_one_and_esc_leaves_the_name_field(pages: Path, tmp_path) -> None:
    page = (pages / "review/page-0001.html").as_uri()
    with Browser(tmp_path / "profile") as browser:
        browser.open(page)
        first_card = browser.js("document.querySelector('section.query figure.cand figcaption').textContent")
        assert first_card.startswith("1 ")  # photo 1's call is new_individual; its best candidate is still number 1
        browser.press("1")  # photo 1: candidate 1
        browser.press("ArrowRight")
        browser.press("n")  # photo 2: a new individual, named
        browser.type("Fin-7")
        assert _state(browser)["active"] == "INPUT:text"
        browser.press("Escape")
        assert _state(browser)["active"] != "INPUT:text"  # Esc left the name field: keys work again
        browser.press("ArrowRight")  # photo 3
        browser.press("1")
        state = _state(browser)
        assert state["position"] == "#3" and state["counter"] == "3 / 60 decided"
        before = state["picked"]
        browser.reload()
        state = _state(browser)
        assert state["picked"] == before and state["picked"][:4] == ["c0", "new", "c0", "skip"]
        assert state["counter"] == "3 / 60 decided" and state["position"] == "#3"
        name = browser.js("document.querySelectorAll('section.query')[1].querySelector('input[type=text]').value")
        assert name == "Fin-7"
        rows = state["csv"].splitlines()
        assert rows[0] == "photo,decision,individual_id" and len(rows) == 4
        assert rows[2].endswith("/p1.jpg,new,Fin-7")
        browser.press("z")  # undo photo 3
        state = _state(browser)
        assert state["picked"][2] == "skip" and state["counter"] == "2 / 60 decided"
        assert len(state["csv"].splitlines()) == 3
        browser.press("u")  # the next undecided photo after photo 3
        assert _state(browser)["position"] == "#4"
        browser.open((pages / "review.html").as_uri())  # the index sees the page's decisions
        expected = ["2 / 25 decided", "0 / 25 decided", "0 / 10 decided"]
        progress_js = "Array.from(document.querySelectorAll('td.progress')).map(td => td.textContent)"
        progress = browser.wait_for(progress_js, expected)
        assert progress == expected
        browser.open(page + "#5")  # a hash opens that photo; changing it is followed
        assert _state(browser)["position"] == "#5"
        browser.js("location.hash = '#9'")
        assert browser.js("document.querySelector('section.query.active').dataset.index") == "8"


def test_the_compare_view_shows_the_query_crop_beside_the_candidate(pages: Path, tmp_path) -> None:
    with Browser(tmp_path / "profile") as browser:
        browser.open((pages / "review/page-0001.html").as_uri() + "#2")
        browser.press("c")
        shown = browser.js(
            "({open: !document.getElementById('compare').hidden,"
            " query: document.getElementById('cmp-query').getAttribute('src'),"
            " cand: document.getElementById('cmp-cand').getAttribute('src'),"
            " thumbs: document.querySelectorAll('#cmp-thumbs img').length})"
        )
        assert shown["open"] and shown["query"].startswith("../crops/fullbody/query/00001-")
        assert shown["cand"].startswith("img/g-") and shown["thumbs"] >= 1
        browser.press("Escape")
        assert browser.js("document.getElementById('compare').hidden") is True


def test_an_encounter_is_one_section_and_one_decision_for_all_its_photos(tmp_path: Path) -> None:
    result, gallery, gallery_dir = synthetic_run(tmp_path, 4, encounters=["E1", "", "E1", ""])
    photos = GalleryPhotos(lambda i: gallery_dir / i, ImageFolder(tmp_path / "run" / REVIEW_DIR))
    views = build_views(result, gallery, tmp_path / "run/crops", REGION, photos, None, RULE)
    assert [v.key for v in views] == ["encounter:E1", str(tmp_path / "survey/p1.jpg"), str(tmp_path / "survey/p3.jpg")]
    assert views[0].photo == "encounter E1 (2 photos)" and len(views[0].members) == 2
    write_review(tmp_path / "run", views, run_id="enc", page_size=10)
    with Browser(tmp_path / "profile") as browser:
        browser.open((tmp_path / "run/review/page-0001.html").as_uri())
        browser.press("n")
        browser.type("Pod-3")
        browser.press("Enter")
        rows = browser.js("window.decisionsCsv()").splitlines()
    assert rows[1:] == [f"{tmp_path}/survey/p0.jpg,new,Pod-3", f"{tmp_path}/survey/p2.jpg,new,Pod-3"]
