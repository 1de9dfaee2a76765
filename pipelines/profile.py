"""Run an experiment under a profile: `python -m pipelines.profile tiny|kaggle [dvc exp run options and targets]`.

A profile (`profiles/<name>.yaml`) is a set of DVC parameter overrides, not an edit of params.yaml by this
project: each leaf it names becomes `-S ++<key>=<value>` of one `dvc exp run` (mappings merge key by key,
lists and scalars replace, an empty mapping changes nothing). DVC records the experiment with its params,
so `dvc exp show` lists the profile's values. Options after the name go to `dvc exp run` as they are:
`--temp` (or `--queue`) leaves the workspace and `git status` untouched, further `-S key=value` win over
the profile's, stage names limit the run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines._common import run_stage
from whale_core import InputError
from whale_reid.params import read_yaml

PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"


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


def profile_overrides(name: str, profiles_dir: Path = PROFILES_DIR) -> list[str]:
    """The `++key=value` overrides of `profiles/<name>.yaml`, one per leaf, in the file's order.

    Raises:
        InputError: no such profile, or it is not a mapping.
    """
    path = profiles_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in profiles_dir.glob("*.yaml")))
        raise InputError(f"unknown profile {name!r} (known: {known})")
    overlay = read_yaml(path) or {}
    if not isinstance(overlay, dict):
        raise InputError(f"{path}: a profile is a mapping of params.yaml sections, not {type(overlay).__name__}")
    return [f"++{key}={hydra_value(value)}" for key, value in _leaves(overlay)]


def exp_run_command(name: str, dvc_args: list[str]) -> list[str]:
    """`dvc exp run` with the profile's overrides first, so the caller's own `-S` win."""
    return ["dvc", "exp", "run", *(arg for override in profile_overrides(name) for arg in ("-S", override)), *dvc_args]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nprofiles:", ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))))
        raise SystemExit(0 if len(sys.argv) >= 2 else 2)
    command = exp_run_command(sys.argv[1], sys.argv[2:])
    print("$", shlex.join(command), flush=True)
    raise SystemExit(subprocess.run(command, check=False).returncode)


if __name__ == "__main__":
    run_stage(main)()
