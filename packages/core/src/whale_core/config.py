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


def in_range(value: float, rule: str) -> bool:
    """Whether `value` satisfies a RANGES rule: `> 0`, `>= 1`, `<= 180`, or an interval `[0, 1]`, `(0, 1]`."""
    bound = _BOUND.match(rule)
    if bound:
        op, limit = bound.group(1), float(bound.group(2))
        return {">=": value >= limit, ">": value > limit, "<=": value <= limit, "<": value < limit}[op]
    interval = _INTERVAL.match(rule)
    if interval is None:
        raise ValueError(f"not a range rule: {rule!r}")
    opening, low, high, closing = interval.groups()
    above = value >= float(low) if opening == "[" else value > float(low)
    return above and (value <= float(high) if closing == "]" else value < float(high))


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
        if where.rsplit(".", 1)[-1].endswith("seed") and not 0 <= value < 2**32:
            raise ConfigError(f"{where}: {value} is out of range for a seed (a whole number in [0, 2**32))")
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

    Subclasses are `@dataclasses.dataclass(frozen=True)` with defaults for every field and may set
    `SECTION` (the params.yaml section name used in error messages) and `RANGES`: field → the values it may
    take (`"> 0"`, `">= 1"`, `"[0, 1]"`, `"(0, 1]"`), checked by `from_dict` for every number given. Every
    float field refuses NaN and inf, and every `*seed` field values outside [0, 2**32), with no rule needed.
    """

    SECTION: ClassVar[str] = ""
    RANGES: ClassVar[dict[str, str]] = {}

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
        for name, value in kwargs.items():
            rule = cls.RANGES.get(name)
            if rule is not None and value is not None and not in_range(value, rule):
                words = f"in {rule}" if rule[0] in "[(" else rule
                raise ConfigError(f"{section}.{name}: {value} must be {words}")
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
