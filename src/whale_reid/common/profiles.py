"""Profiles (`profiles/<name>.yaml`) as DVC parameter overrides: one `-S ++<key>=<value>` per leaf.

Mappings merge key by key, lists and scalars replace, an empty mapping changes nothing — the overrides
`dvc exp run -S` applies to params.yaml mean exactly that overlay (tests/pipelines/test_profile.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from whale_core import InputError
from whale_reid.common.params import read_yaml

PROFILES_DIR = Path(__file__).resolve().parents[3] / "profiles"


def hydra_value(value: Any) -> str:
    """`value` in the override grammar DVC's `-S` parses (strings always quoted, so `"0"` stays a string)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # Hydra's quoted strings: a backslash is literal unless a run of them precedes a quote or the end
        doubled = re.sub(r"(\\+)(?='|$)", lambda run: run.group(1) * 2, value)
        return "'" + doubled.replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    raise InputError(f"profile value {value!r} is not YAML data DVC can set")


def _leaves(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    pairs = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            pairs.extend(_leaves(value, f"{prefix}{key}."))
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` over `base`: mappings merge key by key, lists and scalars replace (what `-S ++key=value` does)."""
    merged = dict(base)
    for key, value in overlay.items():
        both = isinstance(merged.get(key), dict) and isinstance(value, dict)
        merged[key] = merge(merged[key], value) if both else value
    return merged


def profile_overlay(name: str, profiles_dir: Path = PROFILES_DIR, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The params `profiles/<name>.yaml` sets; `extends: <profile>` at its top starts from that profile's.

    Raises:
        InputError: no such profile, not a mapping, or a chain of `extends` that comes back to itself.
    """
    path = profiles_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in profiles_dir.glob("*.yaml")))
        raise InputError(f"unknown profile {name!r} (known: {known})")
    overlay = read_yaml(path) or {}
    if not isinstance(overlay, dict):
        raise InputError(f"{path}: a profile is a mapping of params.yaml sections, not {type(overlay).__name__}")
    base = overlay.pop("extends", None)
    if base is None:
        return overlay
    if base in (*_seen, name):
        raise InputError(f"{path}: extends: {base!r} comes back to itself ({' -> '.join((*_seen, name, base))})")
    return merge(profile_overlay(str(base), profiles_dir, (*_seen, name)), overlay)


def profile_overrides(name: str, profiles_dir: Path = PROFILES_DIR) -> list[str]:
    """The `++key=value` overrides of `profiles/<name>.yaml` (its `extends` chain resolved), one per leaf.

    Raises:
        InputError: as `profile_overlay`.
    """
    return [f"++{key}={hydra_value(value)}" for key, value in _leaves(profile_overlay(name, profiles_dir))]


def exp_run_command(name: str, dvc_args: list[str], profiles_dir: Path = PROFILES_DIR) -> list[str]:
    """`dvc exp run` with the profile's overrides first, so the caller's own `-S` win."""
    overrides = profile_overrides(name, profiles_dir)
    return ["dvc", "exp", "run", *(arg for override in overrides for arg in ("-S", override)), *dvc_args]
