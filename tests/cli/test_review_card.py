"""The review card as a decision screen, in headless Chromium at 1280×800 (synthetic run, seconds).

One recommendation per photo that agrees with its score and threshold (never the Kaggle hedge's rank-2
`new_individual`), candidate pictures large enough to judge, captions that do not break words, a compare view
that shows any candidate without deciding, and pictures of photos named with `#`, `?` and `%` that load.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.cli.cdp import Browser
from tests.cli.conftest import dump_dom
from tests.cli.synthetic import RULE, synthetic_run, write_synthetic_pages
from whale_core import NEW_INDIVIDUAL
from whale_reid.review.pages import KEYS


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    return write_synthetic_pages(tmp_path_factory.mktemp("card"), n_photos=8, page_size=8)


def _open(browser: Browser, url: str) -> None:
    browser.send("Emulation.setDeviceMetricsOverride", width=1280, height=800, deviceScaleFactor=1, mobile=False)
    browser.open(url)


def _shift_digit(browser: Browser, digit: int) -> None:
    """Shift+digit as a US keyboard sends it: the key is the symbol, the code the digit."""
    key = "!@#$%"[digit - 1]
    for kind in ("keyDown", "keyUp"):
        browser.send("Input.dispatchKeyEvent", type=kind, key=key, code=f"Digit{digit}", modifiers=8,
                     windowsVirtualKeyCode=48 + digit, **({"text": key} if kind == "keyDown" else {}))  # fmt: skip


def test_the_call_follows_the_score_and_threshold_not_the_rank_of_new_individual(tmp_path: Path) -> None:
    result, _, _ = synthetic_run(tmp_path, 8)
    matches = result.matches
    second = matches[matches["photo"] == matches["photo"].unique()[1]]
    assert second["individual_id"].tolist()[1] == NEW_INDIVIDUAL  # the hedge: new_individual at rank 2
    assert (second["recommendation"] == second["individual_id"].iloc[0]).all()  # ... but the call is the match
    for _, rows in matches.groupby("photo"):
        assert rows["recommendation"].nunique() == 1 and (rows["threshold"] == RULE.post.threshold).all()


def test_the_card_recommends_one_answer_consistent_with_its_score_and_threshold(pages: Path, tmp_path) -> None:
    with Browser(tmp_path / "profile") as browser:
        _open(browser, (pages / "review/page-0001.html").as_uri())
        calls = browser.js(
            "Array.from(document.querySelectorAll('section.query')).map(s => { const c = s.querySelector('.call');"
            " return {call: c.dataset.call, score: Number(c.dataset.score), threshold: Number(c.dataset.threshold),"
            " text: c.textContent, first: s.querySelector('figure.cand figcaption b').textContent}; })"
        )
        browser.press("ArrowRight")
        browser.press("a")  # photo 2: accept its recommendation
        assert browser.js("window.decisionsCsv()").splitlines()[1].endswith(f",match,{calls[1]['call']}")
    assert len(calls) == 8
    for call in calls:
        if call["call"] == NEW_INDIVIDUAL:
            assert call["score"] < call["threshold"] and "probably new" in call["text"]
        else:
            assert call["score"] >= call["threshold"] and call["call"] == call["first"]
            assert f"known: {call['call']}" in call["text"]
        assert "the call: no candidate" not in call["text"]
    assert calls[0]["call"] == NEW_INDIVIDUAL and calls[1]["call"] != NEW_INDIVIDUAL
    assert "0.94 ≥ 0.60" in calls[1]["text"] and "0.55 < 0.60" in calls[0]["text"]


def test_candidate_pictures_are_large_and_captions_break_no_word_at_1280x800(pages: Path, tmp_path) -> None:
    with Browser(tmp_path / "profile") as browser:
        _open(browser, (pages / "review/page-0001.html").as_uri())
        sizes = browser.js(
            "Array.from(document.querySelectorAll('section.query.active figure.cand img.gallery')).map(img => {"
            " const r = img.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; })"
        )
        split_words = browser.js(  # a word broken over two lines has two client rectangles
            "(() => { const out = []; document.querySelectorAll('section.query.active figure.cand figcaption')"
            ".forEach(cap => { const walk = document.createTreeWalker(cap, NodeFilter.SHOW_TEXT); let node;"
            " while ((node = walk.nextNode())) { if (node.parentElement.closest('.file')) continue;"
            " for (const m of node.textContent.matchAll(/\\S+/g)) { const r = document.createRange();"
            " r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);"
            " if (r.getClientRects().length > 1) out.push(m[0]); } } }); return out; })()"
        )
    assert len(sizes) == 5
    assert all(height >= 240 and width >= 240 for width, height in sizes), sizes
    assert split_words == []


def test_comparing_other_candidates_records_no_decision(pages: Path, tmp_path) -> None:
    state = (
        "({counter: document.getElementById('counter').textContent, stored: localStorage.length,"
        " picked: document.querySelector('section.query.active input[type=radio]:checked').value,"
        " cand: document.getElementById('cmp-cand').getAttribute('src'),"
        " title: document.getElementById('cmp-title').textContent,"
        " images: JSON.parse(document.getElementById('review-data').textContent).queries[1].candidates"
        "   .map(c => c.images[0])})"
    )
    with Browser(tmp_path / "profile") as browser:
        _open(browser, (pages / "review/page-0001.html").as_uri() + "#2")
        browser.press("c")
        first = browser.js(state)
        browser.press("ArrowRight")  # in compare: the next candidate, not the next photo
        second = browser.js(state)
        _shift_digit(browser, 4)
        fourth = browser.js(state)
        assert browser.js("location.hash") == "#2"
        browser.press("3")  # a plain number decides
        decided = browser.js(state)
        pane = browser.js(
            "(() => { const z = document.querySelectorAll('#compare .zoom'), img = z[0].querySelector('img');"
            " z[0].dispatchEvent(new WheelEvent('wheel', {deltaY: -400, bubbles: true, cancelable: true}));"
            " return {pane: z[0].clientWidth, img: img.getBoundingClientRect().width,"
            " transforms: Array.from(z).map(p => p.querySelector('img').style.transform)}; })()"
        )
        browser.press("?")
        help_text = browser.js(
            "document.getElementById('help').hidden ? '' : document.getElementById('help').textContent"
        )
    for seen in (first, second, fourth):
        assert seen["counter"].startswith("0 / ") and seen["stored"] == 0 and seen["picked"] == "skip"
    assert [first["cand"], second["cand"], fourth["cand"]] == [first["images"][i] for i in (0, 1, 3)]
    assert first["title"].startswith("candidate 1 / 5") and "similarity 0.940 (threshold 0.600)" in first["title"]
    assert fourth["title"].startswith("candidate 4 / 5")
    assert decided["picked"] == "c2" and decided["counter"].startswith("1 / ")
    assert pane["img"] >= pane["pane"] - 1  # fitted to the pane, however small the crop
    assert pane["transforms"][0] == pane["transforms"][1] and "scale(1)" not in pane["transforms"][0]
    assert all(key in help_text for key, _ in KEYS)


def test_photos_named_with_hash_question_mark_and_percent_load(tmp_path: Path) -> None:
    out = write_synthetic_pages(tmp_path, n_photos=3, page_size=3, stem="a#b?c%20d ")
    page = out / "review/page-0001.html"
    dom = dump_dom(page, tmp_path / "profile")
    assert 'data-images-checked="1"' in dom and 'data-loaded="0"' not in dom
    assert re.search(r"src=\"\.\./crops/fullbody/query/00000-a%23b%3Fc%2520d%20", dom)
    with Browser(tmp_path / "profile2") as browser:
        _open(browser, page.as_uri())
        browser.press("c")
        hrefs = browser.js("Array.from(document.querySelectorAll('#compare a')).map(a => a.getAttribute('href'))")
    decoded_once = [
        Path(unquote(urlparse(h).path)) if h.startswith("file:") else page.parent / unquote(h) for h in hrefs
    ]
    assert len(hrefs) == 3 and all(p.is_file() for p in decoded_once), hrefs  # `%2520` (twice) would not exist
    assert any(p.name.startswith("00000-a#b?c%20d ") for p in decoded_once)
