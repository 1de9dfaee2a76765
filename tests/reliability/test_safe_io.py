"""Safe loading and atomic writing: pickled checkpoints are refused, a killed writer leaves the old file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from whale_core import InputError, atomic_write_bytes
from whale_embedder.checkpoint import load_checkpoint, save_checkpoint


class _Payload:
    """Unpickling this would create a folder: proof that code in a checkpoint ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_checkpoint_with_pickled_object_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(2)}, "extra": _Payload(marker)}, path)
    with pytest.raises(InputError, match=r"evil\.pt: refused: the checkpoint holds pickled Python objects") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_plain_checkpoint_round_trips(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "epoch": 3, "classes": ["a", "b"], "config": {"lr": 0.1}}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "ok.pt", state))
    assert loaded["epoch"] == 3 and loaded["classes"] == ["a", "b"]
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])


def test_truncated_checkpoint_is_named(tmp_path):
    path = save_checkpoint(tmp_path / "cut.pt", {"model": {"w": torch.ones(1000)}})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match=r"cut\.pt: unreadable checkpoint"):
        load_checkpoint(path)


WRITER = textwrap.dedent(
    """
    import sys, time
    from whale_core import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"NEW" * 100_000)
            fh.flush()
            print("half-written", flush=True)
            time.sleep(60)
            fh.write(b"END")
    """
)


def test_writer_killed_mid_write_leaves_the_old_file(tmp_path):
    target = atomic_write_bytes(tmp_path / "metrics.json", b'{"old": true}\n')
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "half-written"
        partial = [p for p in tmp_path.iterdir() if p != target]
        assert len(partial) == 1 and partial[0].stat().st_size == 300_000  # the write really was under way
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
    assert target.read_bytes() == b'{"old": true}\n'
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    # SIGKILL allows no clean-up: the partial file stays, hidden and never under the target's name
    assert len(leftovers) == 1 and leftovers[0].startswith(".metrics.") and ".tmp" in leftovers[0]
