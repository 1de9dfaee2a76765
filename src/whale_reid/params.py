"""Reading params.yaml: one function for the stage scripts and the `whale-reid` command alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from whale_core import InputError

PARAMS_FILE = "params.yaml"


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml (relative to the working directory, as DVC runs stages from the repo root)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: params file not found (run stages from the repository root)")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(params, dict):
        raise InputError(f"{path}: expected a mapping of sections at the top level")
    return params
