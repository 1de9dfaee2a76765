from __future__ import annotations

from dataclasses import dataclass

import pytest

from whale_core import Config, ConfigError


@dataclass(frozen=True)
class Inner(Config):
    SECTION = "outer.inner"
    margin_rad: float = 0.5
    names: tuple[str, ...] = ("a",)


@dataclass(frozen=True)
class Outer(Config):
    SECTION = "outer"
    epochs: int = 3
    flag: bool = False
    label: str | None = None
    inner: Inner = Inner()


def test_defaults_and_round_trip():
    cfg = Outer.from_dict({"epochs": 5, "inner": {"margin_rad": 1, "names": ["x", "y"]}})
    assert cfg.epochs == 5 and cfg.inner.margin_rad == 1.0 and isinstance(cfg.inner.margin_rad, float)
    assert cfg.inner.names == ("x", "y")
    assert Outer.from_dict(cfg.to_dict()) == cfg
    assert Outer.from_dict(None) == Outer()


def test_unknown_key_names_key_and_section():
    with pytest.raises(ConfigError, match=r"unknown key 'epocs' in params section 'outer'"):
        Outer.from_dict({"epocs": 5})
    with pytest.raises(ConfigError, match=r"unknown key 'm' in params section 'outer.inner'"):
        Outer.from_dict({"inner": {"m": 0.3}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"epochs": "3"}, "outer.epochs: expected an integer"),
        ({"epochs": 2.5}, "outer.epochs: expected an integer"),
        ({"flag": 1}, "outer.flag: expected true/false"),
        ({"inner": {"margin_rad": "wide"}}, "outer.inner.margin_rad: expected a number"),
        ({"inner": 3}, "outer.inner: expected a mapping"),
        ({"epochs": None}, "outer.epochs: must not be null"),
    ],
)
def test_wrong_types_are_named(data, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        Outer.from_dict(data)


def test_replace_validates():
    cfg = Outer().replace(epochs=9)
    assert cfg.epochs == 9
    with pytest.raises(ConfigError):
        Outer().replace(epochs="nine")


@dataclass(frozen=True)
class Sized(Config):
    SECTION = "sized"
    image_size: tuple[int, int] = (320, 512)


def test_fixed_length_tuple():
    assert Sized.from_dict({"image_size": [100, 200]}).image_size == (100, 200)
    with pytest.raises(ConfigError, match=r"sized\.image_size: expected 2 values"):
        Sized.from_dict({"image_size": [1, 2, 3]})
    with pytest.raises(ConfigError, match=r"sized\.image_size\[1\]: expected an integer"):
        Sized.from_dict({"image_size": [1, "x"]})


@pytest.mark.parametrize("data", ["fast", [["epochs", 4]], 3, ("epochs", 4)])
def test_a_section_that_is_not_a_mapping_is_refused_naming_it(data):
    with pytest.raises(ConfigError, match=r"^params section 'outer': expected a mapping of keys, got "):
        Outer.from_dict(data)
