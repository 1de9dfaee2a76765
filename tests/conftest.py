"""Suite-wide set-up: the offline environment and in-repo caches before any library is imported."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from whale_core import configure_offline_env

REPO_ROOT = Path(__file__).resolve().parents[1]
configure_offline_env(REPO_ROOT)
(REPO_ROOT / ".cache").mkdir(exist_ok=True)
# A stray MLflow call in a test must never write mlflow.db into the repository.
os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///" + str(REPO_ROOT / ".cache" / "pytest-mlflow.db"))


#: fixtures that run the whole pipeline with `dvc repro` or hand out its outputs: their tests are `pipeline` tests
PIPELINE_FIXTURES = {"tiny_pipeline", "pipeline_copy", "identified"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a pipeline fixture `pipeline` (so `make test-fast` can leave it out)."""
    for item in items:
        if PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pipeline)


def _copy_worktree(dest: Path) -> None:
    """Copy the files git would ship (tracked + untracked-not-ignored) — what a fresh clone has."""
    import shutil
    import subprocess

    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def make_pipeline_repo(dest: Path, profile: str | None = "tiny") -> Path:
    """A fresh git + DVC repository of the project at `dest`; its committed params are `profiles/<profile>.yaml`'s.

    The profile's overrides are applied by DVC's own `-S` code (what `dvc exp run -S` does to the workspace),
    then committed, as a user would keep a profile on a branch. `profile=None` commits the defaults.
    """
    import subprocess

    _copy_worktree(dest)
    if profile is not None:
        from dvc.utils.hydra import apply_overrides

        from whale_reid.common.profiles import profile_overrides

        apply_overrides(dest / "params.yaml", profile_overrides(profile, dest / "profiles"))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "fixture"]):
        subprocess.run(cmd, cwd=dest, check=True, env=_env())
    return dest


def _env() -> dict[str, str]:
    # the repository first, then the caller's path (a shared environment may point at a checkout's sources)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))}
    env.setdefault("GIT_AUTHOR_NAME", "whale-reid tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@whale-reid.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "whale-reid tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@whale-reid.invalid")
    return env


def error_lines(stderr: str) -> list[str]:
    """What a failed command said on stderr, less the log lines a stage writes there (`HH:MM:SS INFO ...`)."""
    return [line for line in stderr.strip().splitlines() if not re.match(r"\d\d:\d\d:\d\d INFO ", line)]


def run_in(cwd: Path, *cmd: str, timeout: int = 900):
    """Run a command as a user would in `cwd` (the venv's tools first on PATH), capturing output."""
    import subprocess

    env = _env()
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MLFLOW_TRACKING_URI"] = "sqlite:///" + str(cwd / "mlflow.db")
    return subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """The whole pipeline run once on the tiny profile, in a temporary git repo of the defaults, the way a user
    switches: `python -m pipelines.profile tiny` (one `dvc exp run` with the profile's overrides)."""
    repo = make_pipeline_repo(tmp_path_factory.mktemp("pipeline") / "repo", profile=None)
    proc = run_in(repo, sys.executable, "-m", "pipelines.profile", "tiny")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return repo


@pytest.fixture(autouse=True)
def _restore_environment():
    """Undo environment changes a test makes in-process (importing ultralytics sets OMP_NUM_THREADS=1 and its
    training sets PYTHONHASHSEED), so later tests' subprocesses run as they would on their own — a stage run
    with another thread count rounds differently and would not reproduce a reference run bit for bit."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
