"""Every number a config class holds has a stated range, and a value outside it is refused naming the key.

The classes are found by importing every module of the packages and walking `Config`'s subclasses, so a config
class or a numeric field added later fails `test_every_numeric_field_has_a_range` until its range is stated.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
import re
import types
import typing
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
import yaml

from tests.conftest import REPO_ROOT
from whale_core import Config, ConfigError
from whale_core.config import in_range
from whale_reid.common.params import EmbedderParams, check_params, load_params, read_yaml
from whale_reid.common.profiles import PROFILES_DIR, merge, profile_overlay
from whale_reid.demo import DemoConfig

PACKAGES = ("whale_core", "whale_retrieval", "whale_embedder", "whale_detector", "whale_matcher", "whale_reid")


def config_classes() -> list[type[Config]]:
    """Every Config subclass the packages define (each of their modules imported first)."""
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)
    found, todo = set(), [Config]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] in PACKAGES:
                found.add(sub)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


CLASSES = config_classes()


def _plain(tp: Any) -> Any:
    """The annotation without its `| None`."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def number_type(tp: Any) -> type | None:
    """`int` or `float` when the field holds numbers (itself, its list items or its mapping values), else None."""
    tp = _plain(tp)
    if tp in (int, float):  # bool is not int here: `tp is bool` never equals int
        return tp
    if get_origin(tp) is tuple:
        kinds = {number_type(a) for a in get_args(tp) if a is not Ellipsis}
        return kinds.pop() if len(kinds) == 1 else None
    if get_origin(tp) is dict:
        return number_type(get_args(tp)[1])
    return None


def numeric_fields(cls: type[Config]) -> dict[str, type]:
    hints = get_type_hints(cls)
    return {f.name: kind for f in dataclasses.fields(cls) if (kind := number_type(hints[f.name])) is not None}


def test_the_walk_finds_the_config_classes_and_their_numbers() -> None:
    """The oracle the other tests lean on: known classes and fields are found, booleans and strings are not."""
    names = {cls.__name__ for cls in CLASSES}
    assert {"ArcFaceConfig", "DetectorConfig", "MatchConfig", "MatcherConfig", "DemoConfig", "TuneConfig",
            "PseudoConfig", "PostProcessing", "KnnConfig", "CropConfig", "SelectConfig"} <= names  # fmt: skip
    arcface = numeric_fields(next(cls for cls in CLASSES if cls.__name__ == "ArcFaceConfig"))
    assert arcface == {"s": float, "m": float, "ls_eps": float, "subcenters": int, "margin_a": float,
                       "margin_lambda": float, "margin_b": float}  # fmt: skip
    demo = numeric_fields(DemoConfig)
    assert demo["image_size"] is int and demo["photo_types"] is float and "seed" in demo


def test_every_numeric_field_has_a_range() -> None:
    missing, stale, bad_rules = [], [], []
    for cls in CLASSES:
        numbers = numeric_fields(cls)
        missing += [f"{cls.__name__}.{name}" for name in numbers if cls.rule_for(name) is None]
        stale += [f"{cls.__name__}.{name}" for name in cls.RANGES if name not in numbers]
        for name in numbers:
            try:
                in_range(0.0, cls.rule_for(name) or "> 0")
            except ValueError:
                bad_rules.append(f"{cls.__name__}.{name}: {cls.rule_for(name)!r}")
        cls()  # the defaults are within their ranges (the constructor checks them)
    assert not missing, f"numeric config fields without a RANGES rule: {missing}"
    assert not stale, f"RANGES rules naming no numeric field: {stale}"
    assert not bad_rules, bad_rules


_LIMIT = re.compile(r"pi/2|pi|-?\d+(?:\.\d+)?(?:e-?\d+)?")


def outside(rule: str, kind: type) -> float | int:
    """A value of `kind` that `rule` refuses: one step past (or at) one of the limits it names."""
    limits = [{"pi": math.pi, "pi/2": math.pi / 2}.get(text) or float(text) for text in _LIMIT.findall(rule)]
    for limit in limits:
        candidates = (
            (math.floor(limit) - 1, math.ceil(limit) + 1, limit) if kind is int else (limit - 1, limit + 1, limit)
        )
        for value in candidates:
            if not in_range(value, rule) and (kind is float or value == int(value)):
                return kind(value)
    raise AssertionError(f"no value outside {rule!r}")


def _holding(cls: type[Config], name: str, bad: float | int) -> Any:
    """`bad` as field `name` holds it: the value itself, the first item of a list, the first value of a mapping."""
    default = getattr(cls(), name)
    if isinstance(default, tuple):
        return (bad, *default[1:])
    if isinstance(default, typing.Mapping):
        key = next(iter(default), "any_key")
        return {**default, key: bad}
    return bad


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_an_out_of_range_value_is_refused_naming_the_key(cls: type[Config]) -> None:
    """Every ranged number of the class, one at a time, from params (`from_dict`) and from code (the constructor)."""
    for name, kind in numeric_fields(cls).items():
        rule = cls.rule_for(name)
        value = _holding(cls, name, outside(rule, kind))
        data = list(value) if isinstance(value, tuple) else value
        with pytest.raises(ConfigError) as from_params:
            cls.from_dict({name: data})
        with pytest.raises(ConfigError) as from_code:
            cls(**{name: value})
        for caught in (from_params, from_code):
            message = str(caught.value)
            assert re.match(rf"{re.escape(cls.SECTION)}\.{name}(\[\d+\]|\.\w+)?: \S+ must be ", message), message


def _all_sections(params: dict) -> None:
    """Every section checked as the stages check them: `check_params`, plus `data.demo` and each model's config."""
    check_params(params)
    DemoConfig.from_dict(params.get("data", {}).get("demo"), section="data.demo")
    embedder = EmbedderParams.from_dict(params.get("embedder"))
    for model in embedder.models:
        embedder.model_config(model)


@pytest.mark.parametrize("profile", [None, *sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))])
def test_params_yaml_and_every_profile_are_within_range(profile: str | None) -> None:
    params = read_yaml(REPO_ROOT / "params.yaml")
    _all_sections(merge(params, profile_overlay(profile)) if profile else params)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"match": {"features": {"ratio": 1.5}}}, "match.features.ratio: 1.5 must be in (0, 1]"),
        ({"detector": {"degrees": -10}}, "detector.degrees: -10.0 must be in [0, 180]"),
        ({"pseudo": {"round_stages": [0]}}, "pseudo.round_stages[0]: 0 must be >= 1"),
        ({"embedder": {"common": {"arcface": {"m": 2.0}}}}, "embedder.common.arcface.m: 2.0 must be in [0, pi/2]"),
        ({"embedder": {"zoo": {"demo": {"lr": 20}}}}, "embedder.zoo.demo.lr: 20.0 must be in (0, 10)"),
        ({"data": {"demo": {"difficulty": 1.5}}}, "data.demo.difficulty: 1.5 must be in [0, 1]"),
    ],
)
def test_an_out_of_range_value_in_params_yaml_is_named_by_section_and_key(
    tmp_path: Path, edit: dict, message: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(merge(read_yaml(REPO_ROOT / "params.yaml"), edit)))
    with pytest.raises(ConfigError) as caught:
        _all_sections(load_params(path))
    assert str(caught.value) == message
