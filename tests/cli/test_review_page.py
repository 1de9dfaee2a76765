"""The review page in headless Chromium: every query, five candidate images that load, escaped text."""

from __future__ import annotations

import html
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


def test_exported_decisions_are_what_was_picked(identified: IdentifyRun, tmp_path: Path) -> None:
    """Pick candidate #1 on the first photo and 'new' (named) on the second, then read the page's CSV."""
    picks = """<script>
      const s = document.querySelectorAll("section.query");
      s[0].querySelector("figure[data-choice='c0']").click();
      s[1].querySelector("input[value='new']").checked = true;
      s[1].querySelector("input[type=text]").value = "Fin,7";
      document.body.dataset.csv = window.decisionsCsv();
    </script></body>"""
    page = tmp_path / "picked.html"
    page.write_text((identified.out / "review.html").read_text().replace("</body>", picks))
    dom = dump_dom(page, tmp_path / "profile")
    csv = html.unescape(re.search(r'data-csv="([^"]*)"', dom).group(1))
    matches = identified.matches
    first, second = matches["photo"].drop_duplicates().iloc[:2]
    top = matches.loc[(matches["photo"] == first) & (matches["individual_id"] != "new_individual"), "individual_id"]
    assert csv == f'photo,decision,individual_id\n{first},match,{top.iloc[0]}\n{second},new,"Fin,7"\n'
