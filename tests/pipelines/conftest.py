"""Helpers for running stage scripts for real, in a temporary working directory."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]


def _lookup(dotted: str, *tables: dict) -> str:
    """`a.b.c` from the first table that has it."""
    for table in tables:
        value: object = table
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            return str(value)
    raise KeyError(f"dvc.yaml interpolates ${{{dotted}}}, which no params file gives")


def stage_command(stage: str, cwd: Path, item: dict | None = None) -> list[str]:
    """The stage's `cmd:` exactly as dvc.yaml gives it (the one place its paths are named), `${...}` filled in
    from `cwd/params.yaml`, then the repository's params.yaml (the defaults), and `item` (a matrix stage's)."""
    spec = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"][stage]
    spec = spec.get("do", spec)
    local = cwd / "params.yaml"
    tables = [{"item": item or {}}, yaml.safe_load(local.read_text()) or {} if local.is_file() else {},
              yaml.safe_load((REPO_ROOT / "params.yaml").read_text())]  # fmt: skip
    cmd = re.sub(r"\$\{([^}]+)\}", lambda m: _lookup(m.group(1), *tables), spec["cmd"])
    words = shlex.split(cmd)
    return [sys.executable if words[0] == "python" else words[0], *words[1:]]


def run_stage(stage: str, cwd: Path, *args: str, item: dict | None = None, timeout: int = 600):
    """Run a stage in `cwd` as DVC would (its dvc.yaml `cmd:`, plus `args`); returns the completed process."""
    # the repository first, then the caller's path (a shared environment may point at a checkout's sources)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))}
    return subprocess.run([*stage_command(stage, cwd, item), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def write_params(cwd: Path, params: dict) -> None:
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_kaggle_layout(root: Path, n_train: int = 8, n_test: int = 3) -> Path:
    """A minimal Kaggle-layout folder: noise JPEGs, 3 individuals, a species typo, a sample submission."""
    raw = root / "raw"
    (raw / "train_images").mkdir(parents=True)
    (raw / "test_images").mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            pixels = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(raw / f"{split}_images" / f"{split}{i:02d}.jpg")
    species = ["bottlenose_dolpin", "beluga", "kiler_whale"]
    pd.DataFrame(
        {
            "image": [f"train{i:02d}.jpg" for i in range(n_train)],
            "species": [species[i % 3] for i in range(n_train)],
            "individual_id": [f"id{i % 3}" for i in range(n_train)],
        }
    ).to_csv(raw / "train.csv", index=False)
    pd.DataFrame(
        {"image": [f"test{i:02d}.jpg" for i in range(n_test)], "predictions": ["new_individual"] * n_test}
    ).to_csv(raw / "sample_submission.csv", index=False)
    return raw


@pytest.fixture
def kaggle_workdir(tmp_path: Path) -> Path:
    make_kaggle_layout(tmp_path)
    write_params(tmp_path, {"data": {"raw_dir": "raw"}, "prepare": {"n_folds": 3, "seed": 1}})
    return tmp_path
