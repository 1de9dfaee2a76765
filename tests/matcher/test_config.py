import pytest

from whale_core import ConfigError
from whale_matcher import MatcherConfig


def test_defaults_and_round_trip():
    cfg = MatcherConfig.from_dict({"extractor": "orb", "ratio": 0.75, "workers": 2})
    assert (cfg.extractor, cfg.ratio, cfg.workers, cfg.max_keypoints, cfg.mirror) == ("orb", 0.75, 2, 400, True)
    assert MatcherConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_key_is_named_with_its_section():
    with pytest.raises(ConfigError, match=r"unknown key 'ratio_test' in params section 'match.features'"):
        MatcherConfig.from_dict({"ratio_test": 0.8})


@pytest.mark.parametrize(
    ("key", "value"),
    [("ratio", 1.5), ("ratio", 0.0), ("max_keypoints", 0), ("reproj_px", -1.0), ("min_matches", 1), ("workers", 0)]
    + [("descriptor_bits", 3), ("descriptor_bits", 9)],
)
def test_bad_range_names_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"match\.features\.{key}"):
        MatcherConfig.from_dict({key: value})


def test_bad_choice_and_type():
    with pytest.raises(ConfigError, match="extractor"):
        MatcherConfig.from_dict({"extractor": "surf"})
    with pytest.raises(ConfigError, match="geometry"):
        MatcherConfig.from_dict({"geometry": "lmeds"})
    with pytest.raises(ConfigError, match="mirror"):
        MatcherConfig.from_dict({"mirror": "yes"})
    with pytest.raises(ConfigError, match="min_matches"):  # a full affine needs 3 points
        MatcherConfig.from_dict({"geometry": "usac_magsac", "min_matches": 2})
