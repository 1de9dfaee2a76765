"""The review page's match drawing from the features verification kept equals the one from re-extracting."""

from __future__ import annotations

import numpy as np
from PIL import Image

from whale_matcher import extract_features
from whale_matcher.synthetic import similarity, texture, warp
from whale_reid.answers.verification import MatchConfig, evidence_picture


def test_picture_from_kept_features_equals_the_re_extracted_one(tmp_path):
    cfg = MatchConfig(enabled=True)
    query_img = texture(3)
    crops = {"q": query_img, "g": warp(query_img, similarity()), "other": texture(4)}
    paths = {}
    for name, pixels in crops.items():
        paths[name] = tmp_path / f"{name}.jpg"
        Image.fromarray(pixels).convert("RGB").save(paths[name], quality=95)
    # as identify and the local_features stage hold them: the query photos in one set, the gallery in another
    query = extract_features(["x", "q"], [str(paths["other"]), str(paths["q"])], cfg.features, progress=False)
    gallery = extract_features(["other", "g"], [str(paths["other"]), str(paths["g"])], cfg.features, progress=False)

    kept = evidence_picture(paths["q"], paths["g"], cfg, height=160, features=(query, 1, gallery, 1))
    again = evidence_picture(paths["q"], paths["g"], cfg, height=160)

    assert kept[1] == again[1] > 20  # the warped copy matches, with the same inliers either way
    np.testing.assert_array_equal(kept[0], again[0])
    other = evidence_picture(paths["q"], paths["other"], cfg, height=160, features=(query, 1, gallery, 0))
    assert other[1] < kept[1] // 4  # another texture: the rows are not mixed up


def test_evidence_uses_kept_features_only_where_both_photos_have_them(tmp_path):
    from whale_reid.review.views import Evidence

    cfg = MatchConfig(enabled=True)
    path = tmp_path / "q.jpg"
    Image.fromarray(texture(5)).convert("RGB").save(path)
    query = extract_features(["q"], [str(path)], cfg.features, progress=False)
    gallery = extract_features(["a", "b"], [str(path), str(path)], cfg.features, progress=False)
    rows = {"a": 0, "b": 1}
    kept = Evidence(path, cfg, query, 0, gallery, rows)
    assert kept.kept_pair("b") == (query, 0, gallery, 1)
    assert kept.kept_pair("not in the gallery's features") is None  # that crop is extracted again
    assert Evidence(path, cfg, query, -1, gallery, rows).kept_pair("a") is None  # the query photo has none
    assert Evidence(path, cfg).kept_pair("a") is None  # nothing kept (identify without features)
