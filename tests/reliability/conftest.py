"""Destructive tests work on a copy of the shared tiny pipeline (built once per session by `tiny_pipeline`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import _env


@pytest.fixture
def pipeline_copy(tiny_pipeline, tmp_path) -> Path:
    """A private copy of the finished tiny pipeline repo (outputs, DVC cache, mlflow.db, optuna.db)."""
    return Path(shutil.copytree(tiny_pipeline, tmp_path / "repo", symlinks=True))


def stage_env(repo: Path, **extra: str) -> dict[str, str]:
    env = _env()
    env["PATH"] = str(Path(sys.executable).parent) + ":" + env.get("PATH", "")
    env["MLFLOW_TRACKING_URI"] = "sqlite:///" + str(repo / "mlflow.db")
    return {**env, **extra}


def run_module(repo: Path, stage: str, *args: str, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """A stage in `repo` as DVC runs it, its dvc.yaml `cmd:` (extra keyword args are environment variables)."""
    from tests.pipelines.conftest import stage_command

    return subprocess.run(
        [*stage_command(stage, repo), *args],
        cwd=repo, env=stage_env(repo, **env), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def edit_params(repo: Path, **sections: dict) -> None:
    """Merge `sections` (one level deep) into the repo's params.yaml."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for name, values in sections.items():
        params[name] = {**(params.get(name) or {}), **values}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
