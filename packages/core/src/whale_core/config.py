"""Frozen config dataclasses loaded from plain dicts (a params.yaml section) with strict key checks.

Each package owns its config classes; they all inherit `Config` so that an unknown or misspelt
key fails loudly with the key and the section in the message instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from whale_core.errors import InputError

T = TypeVar("T", bound="Config")


class ConfigError(InputError):
    """A params section that does not match its config class."""


_BOUND = re.compile(r"^(>=|>|<=|<)\s*(\S+)$")
_INTERVAL = re.compile(r"^([\[(])\s*(\S+?)\s*,\s*(\S+?)\s*([\])])$")
_NAMED_LIMITS = {"pi": math.pi, "pi/2": math.pi / 2}  #: limits a rule may name: a margin in radians is in [0, pi/2]
#: The range of every `*seed` field that states none: what numpy's and torch's seeding accept.
SEED_RANGE = "[0, 4294967295]"


def _limit(text: str) -> float:
    return _NAMED_LIMITS[text] if text in _NAMED_LIMITS else float(text)


def _satisfies(value: float, rule: str) -> bool:
    bound = _BOUND.match(rule)
    if bound:
        op, limit = bound.group(1), _limit(bound.group(2))
        return {">=": value >= limit, ">": value > limit, "<=": value <= limit, "<": value < limit}[op]
    interval = _INTERVAL.match(rule)
    if interval is None:
        try:
            return value == _limit(rule)  # a single allowed value, as in `0 or [32, 8192]`
        except ValueError:
            raise ValueError(f"not a range rule: {rule!r}") from None
    opening, low, high, closing = interval.groups()
    above = value >= _limit(low) if opening == "[" else value > _limit(low)
    return above and (value <= _limit(high) if closing == "]" else value < _limit(high))


def in_range(value: float, rule: str) -> bool:
    """Whether `value` satisfies a RANGES rule: a bound (`> 0`, `>= 1`, `<= 180`), an interval (`[0, 1]`,
    `(0, pi/2]`), a single value (`0`), or alternatives joined by ` or ` (`0 or [32, 8192]`). NaN satisfies none."""
    return any(_satisfies(value, part.strip()) for part in rule.split(" or "))


def range_words(rule: str) -> str:
    """The rule as the end of "… must be …": `in [0, 1]`, `> 0`, `0 or in [32, 8192]`."""
    return " or ".join(f"in {part}" if part[0] in "[(" else part for part in (p.strip() for p in rule.split(" or ")))


def _numbers(value: Any) -> list[tuple[str, Any]]:
    """The numbers a field holds with the suffix naming each: the value itself, a list's items (`[i]`) or a
    mapping's values (`.key`)."""
    if isinstance(value, Mapping):
        return [(f".{key}", item) for key, item in value.items()]
    if isinstance(value, (tuple, list)):
        return [(f"[{i}]", item) for i, item in enumerate(value)]
    return [("", value)]


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting lists to tuples and ints to floats."""
    optional, inner = _is_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"{where}: must not be null")
    tp = inner
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, Config):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return tp.from_dict(value, section=where)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # `.nan`/`.inf` in YAML: every comparison with NaN is False, so no later
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")  # range check would catch it
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return types.MappingProxyType(
            {_coerce(k, key_tp, f"{where}"): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
        )
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every config dataclass: `from_dict` rejects unknown keys and wrong types.

    Subclasses are `@dataclasses.dataclass(frozen=True)` with defaults for every field and set `SECTION` (the
    params.yaml section name used in error messages) and `RANGES`: field → the values it may take (`"> 0"`,
    `">= 1"`, `"[0, 1]"`, `"(0, pi/2]"`, `"0 or [32, 8192]"`; see `in_range`). Every number, list item or mapping
    value of a field with a rule is checked, by `from_dict` (naming the key under the section it was read from)
    and by the constructor (`__post_init__`; a subclass that has its own calls `super().__post_init__()` first,
    and keeps there only what involves several fields). Every numeric field has a rule (a test walks the
    classes); a `*seed` field without one has `SEED_RANGE`. Float fields refuse NaN and inf as well.
    """

    SECTION: ClassVar[str] = ""
    RANGES: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        self.check_ranges(values, self.SECTION or type(self).__name__)

    @classmethod
    def rule_for(cls, name: str) -> str | None:
        """The range rule of field `name`: its RANGES entry, `SEED_RANGE` for a `*seed` field, else None."""
        return cls.RANGES.get(name) or (SEED_RANGE if name.endswith("seed") else None)

    @classmethod
    def check_ranges(cls, values: Mapping[str, Any], section: str) -> None:
        """Refuse the first number of `values` (field → value) outside its field's rule.

        Raises:
            ConfigError: `<section>.<field>[<item>]: <value> must be <rule>`.
        """
        for name, value in values.items():
            rule = cls.rule_for(name)
            for suffix, number in _numbers(value) if rule is not None else ():
                if number is not None and not in_range(number, rule):
                    raise ConfigError(f"{section}.{name}{suffix}: {number} must be {range_words(rule)}")

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None, section: str | None = None) -> T:
        """Build the config from a mapping; missing keys take defaults, unknown keys are an error.

        Args:
            data: the params section (None or {} gives all defaults).
            section: the dotted params path for messages; defaults to `cls.SECTION`.

        Raises:
            ConfigError: naming the unknown key (and the allowed ones) or the badly typed value.
        """
        section = section or cls.SECTION or cls.__name__
        if data is None:
            data = {}
        if not isinstance(data, Mapping):  # checked before dict(): dict([["batch", 4]]) would succeed
            raise ConfigError(f"params section '{section}': expected a mapping of keys, got {type(data).__name__}")
        data = dict(data)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown key '{unknown[0]}' in params section '{section}' (known keys: {', '.join(sorted(fields))})"
            )
        hints = get_type_hints(cls)
        kwargs = {name: _coerce(value, hints[name], f"{section}.{name}") for name, value in data.items()}
        cls.check_ranges(kwargs, section)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"params section '{section}': {err}") from err

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML/JSON-serialisable dict (tuples become lists) — the inverse of `from_dict`."""

        def plain(value: Any) -> Any:
            if isinstance(value, Config):
                return value.to_dict()
            if isinstance(value, (tuple, list)):
                return [plain(v) for v in value]
            if isinstance(value, (dict, types.MappingProxyType)):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}

    def replace(self: T, **changes: Any) -> T:
        """A copy with some fields changed (validated like `from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **changes}, section=self.SECTION or None)
