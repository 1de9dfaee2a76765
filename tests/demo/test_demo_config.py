"""`DemoConfig`: params.yaml's section loads, unknown keys and out-of-range values are refused by name."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO_ROOT
from whale_core import ConfigError
from whale_reid.demo import TINY_DEMO, DemoConfig


def test_params_yaml_section_loads_and_matches_defaults():
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    cfg = DemoConfig.from_dict(params["data"]["demo"], section="data.demo")
    assert cfg.image_size == (320, 512)
    assert cfg == DemoConfig()
    assert DemoConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown key 'n_individual' in params section 'data.demo'"):
        DemoConfig.from_dict({"n_individual": 10}, section="data.demo")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seed", -1),
        ("n_species", 0),
        ("n_species", 99),
        ("n_individuals", 3),
        ("max_photos_per_individual", 1),
        ("singleton_fraction", 1.5),
        ("image_size", [512, 320]),
        ("image_size", [10, 20]),
        ("mean_photos_per_individual", 2.0),
        ("mean_photos_per_individual", 30.0),
        ("difficulty", -0.1),
        ("test_fraction", 0.0),
        ("test_fraction", 1.0),
        ("new_individual_fraction", 1.0),
    ],
)
def test_out_of_range_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"data\.demo\.{key}(\[\d\])?: .* (is out of range|must be)"):
        DemoConfig.from_dict({key: value}, section="data.demo")


def test_image_size_needs_two_values():
    with pytest.raises(ConfigError, match=r"data\.demo\.image_size: expected 2 values"):
        DemoConfig.from_dict({"image_size": [320, 400, 512]}, section="data.demo")


def test_wrong_type_is_refused():
    with pytest.raises(ConfigError, match="data.demo.n_individuals: expected an integer"):
        DemoConfig.from_dict({"n_individuals": "many"})


def test_tiny_profile_is_small_but_has_three_species():
    assert TINY_DEMO.n_species >= 3
    assert TINY_DEMO.n_individuals <= 30
    assert TINY_DEMO.image_size[1] <= 224
