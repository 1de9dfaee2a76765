"""The review page's match drawing from the features verification kept equals the one from re-extracting."""

from __future__ import annotations

import numpy as np
from PIL import Image

from whale_matcher import extract_features
from whale_matcher.synthetic import similarity, texture, warp
from whale_reid.verification import MatchConfig, evidence_picture


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
