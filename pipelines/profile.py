"""Switch params.yaml to a profile: `python -m pipelines.profile tiny|kaggle [--params params.yaml]`.

A profile (`profiles/<name>.yaml`) is an overlay: only the keys it names change; comments and the
rest of params.yaml are kept (round-trip YAML). `git checkout params.yaml` returns to the defaults.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from pipelines._common import run_stage
from whale_core import InputError, atomic_write_text

PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"


def deep_merge(base: Any, overlay: Any) -> Any:
    """Merge `overlay` into `base` in place (mappings recursively; lists and scalars replaced)."""
    for key, value in overlay.items():
        if key in base and isinstance(base[key], dict) and isinstance(value, dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def apply_profile(name: str, params_path: Path) -> None:
    """Overlay `profiles/<name>.yaml` onto `params_path` atomically."""
    profile_path = PROFILES_DIR / f"{name}.yaml"
    if not profile_path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
        raise InputError(f"unknown profile {name!r} (known: {known})")
    yaml = YAML()
    yaml.preserve_quotes = True
    params = yaml.load(params_path.read_text(encoding="utf-8"))
    overlay = yaml.load(profile_path.read_text(encoding="utf-8")) or {}
    deep_merge(params, overlay)
    from io import StringIO

    buffer = StringIO()
    yaml.dump(params, buffer)
    atomic_write_text(params_path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="profile name: a file profiles/<name>.yaml")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    apply_profile(args.name, args.params)
    print(f"{args.params}: profile {args.name!r} applied")


if __name__ == "__main__":
    run_stage(main)()
