"""A photo whose name is a property of every JavaScript object (`__proto__`, `constructor`) keeps its decision on
the review page and in the exported decisions.csv, like any other photo."""

from __future__ import annotations

from pathlib import Path

from tests.cli.cdp import Browser
from tests.cli.synthetic import REGION, RULE, synthetic_run
from whale_reid.review.pages import REVIEW_DIR, write_review
from whale_reid.review.views import GalleryPhotos, ImageFolder, build_views


def test_photos_named_like_object_properties_keep_their_decisions(tmp_path: Path) -> None:
    result, gallery, gallery_dir = synthetic_run(tmp_path, 3)
    names = {str(tmp_path / "survey" / f"p{i}.jpg"): name for i, name in enumerate(["__proto__", "constructor"])}
    result.photos["photo"] = result.photos["photo"].replace(names)
    result.matches["photo"] = result.matches["photo"].replace(names)
    photos = GalleryPhotos(lambda i: gallery_dir / i, ImageFolder(tmp_path / "run" / REVIEW_DIR))
    views = build_views(result, gallery, tmp_path / "run/crops", REGION, photos, None, RULE)
    write_review(tmp_path / "run", views, run_id="proto", page_size=10)
    with Browser(tmp_path / "profile") as browser:
        browser.open((tmp_path / "run/review/page-0001.html").as_uri())
        browser.press("n")
        browser.type("Fin-1")
        browser.press("Enter")
        browser.press("ArrowRight")
        browser.press("n")
        browser.type("Fin-2")
        browser.press("Enter")
        browser.reload()
        rows = browser.js("window.decisionsCsv()").splitlines()
        counter = browser.js("document.getElementById('counter').textContent")
    assert rows[1:] == ["__proto__,new,Fin-1", "constructor,new,Fin-2"] and counter == "2 / 3 decided"
