"""The review page in headless Chromium: every query, five candidate images that load, escaped text."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.conftest import IdentifyRun, dump_dom


def _sections(dom: str) -> list[str]:
    return re.findall(r"<section class=\"card query[^\"]*\".*?</section>", dom, flags=re.S)


def test_every_query_shows_five_candidate_images_that_load(identified: IdentifyRun, tmp_path: Path) -> None:
    dom = dump_dom(identified.out / "review.html", tmp_path)
    assert 'data-images-checked="1"' in dom
    assert 'data-loaded="0"' not in dom
    sections = _sections(dom)
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
        is_new = "new_individual" in matches.loc[matches["photo"] == photo, "individual_id"].tolist()
        assert ('class="newcard"' in section) == is_new
