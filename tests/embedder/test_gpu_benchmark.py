"""benchmarks/gpu.py proven without a GPU: the batch search, out-of-memory as a row, and a dry run on the CPU."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "gpu.py"


def _gpu_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("capacity", "start", "expected"), [(21, 16, (21, 22)), (21, 40, (21, 22)), (0, 4, (0, 1)), (500, 16, (128, 129))]
)
def test_the_search_finds_the_largest_batch_that_fits(capacity, start, expected):
    tried = []

    def fits(batch: int) -> bool:  # a GPU that holds `capacity` photos
        tried.append(batch)
        return batch <= capacity

    assert _gpu_benchmark().largest_batch(fits, start, limit=128) == expected
    assert len(tried) <= 6 and len(set(tried)) == len(tried)  # each try a distinct batch, at most six


def test_out_of_memory_is_a_result_not_the_end():
    gpu = _gpu_benchmark()

    def too_big() -> tuple[str, str]:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    assert gpu.guarded(too_big) is None
    assert gpu.guarded(lambda: ("12.0 img/s", "40.1 GiB")) == ("12.0 img/s", "40.1 GiB")


@pytest.mark.train
def test_a_dry_run_on_the_cpu_prints_every_row():
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--steps", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": python_path, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| test_efficientnet")]
    assert [r.split(" | ")[1] for r in rows] == [
        "train step, batch 2",
        "train step, batch 4",
        "train step, batch 8",
        "largest micro-batch that fits",
        "extraction, flip TTA, batch 8",
    ]
    assert "| data loader, " in done.stdout and "| retrieval 2,000 × 1,000 × 64-d, k=100 |" in done.stdout
