"""One odd file never aborts a run: a bomb header in a survey folder, a legal 250-byte name, a killed
writer's temp file beside DVC outputs; and atomic writes make files with the umask's mode, not 0600."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from whale_core import atomic_write_csv, atomic_write_text
from whale_reid.identify.queries import check_photos, find_photos, photo_key

REPO_ROOT = Path(__file__).resolve().parents[2]
LONG_NAME = "a" * 246 + ".jpg"  # 250 bytes: legal on every common filesystem


def test_a_bomb_header_and_a_long_name_in_a_survey_folder(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.ppm"
    bomb.write_bytes(b"P6\n20000 20000\n255\n")  # 19 bytes claiming 400 megapixels
    for name in ("ordinary.jpg", LONG_NAME):
        Image.new("RGB", (12, 8), (30, 60, 90)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("calm sea\n")
    photos = find_photos([tmp_path])
    assert [p.name for p in photos] == [LONG_NAME, "bomb.ppm", "ordinary.jpg"]
    readable, errors = check_photos(photos)
    assert [p.name for p in readable] == [LONG_NAME, "ordinary.jpg"]
    assert [e["photo"] for e in errors] == [str(bomb)] and "decompression-bomb guard" in errors[0]["error"]
    key = photo_key(0, readable[0])
    assert key.startswith("00000-aaa") and len(f".{key}.jpg.0123abcd.tmp.jpg".encode()) <= 255


def test_a_250_byte_name_is_written_atomically(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / LONG_NAME, "x")
    multibyte = "é" * 123 + ".csv"  # 250 bytes, shortened on a character boundary for the temp name
    atomic_write_csv(tmp_path / multibyte, pd.DataFrame({"a": [1]}))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LONG_NAME, multibyte])


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o007, 0o660)])
def test_atomic_writes_respect_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        written = atomic_write_text(tmp_path / "catalogue.csv", "shared with colleagues\n")
    finally:
        os.umask(previous)
    assert written.stat().st_mode & 0o777 == mode


def test_a_killed_writers_temp_file_does_not_change_dvc_status(tmp_path: Path) -> None:
    """The repo's `.dvcignore` keeps `.<stem>.<token>.tmp<suffix>` out of every stage's dependencies."""
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs/submission.csv").write_text("image,predictions\n")
    shutil.copy(REPO_ROOT / ".dvcignore", tmp_path / ".dvcignore")

    def run(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    run("git", "init", "-q")
    run(dvc, "init", "-q")
    run(dvc, "stage", "add", "-q", "-n", "report", "-d", "outputs", "-o", "report.txt", "ls outputs > report.txt")
    run(dvc, "repro", "-q")
    (tmp_path / "outputs/.submission.1a2b3c4d.tmp.csv").write_text("image,predic")  # what a SIGKILL leaves
    assert "up to date" in run(dvc, "status")
