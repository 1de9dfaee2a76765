"""`whale-reid identify` runs as units, and odd files in a survey folder become error rows, not aborts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.conftest import IdentifyRun, read_table, run_in
from tests.conftest import _env
from whale_reid.catalogue.run_folder import verify_run

LONG_STEM = "a" * 246  # + ".jpg" = a legal 250-byte file name


def test_a_second_identify_into_the_same_folder_fails_clearly_and_enroll_reads_the_first(
    identified: IdentifyRun, tmp_path: Path
) -> None:
    repo = Path(shutil.copytree(identified.repo, tmp_path / "repo", symlinks=True))
    out = tmp_path / "run"
    env = {**_env(), "PATH": str(Path(sys.executable).parent) + ":" + _env().get("PATH", "")}
    env["MLFLOW_TRACKING_URI"] = "sqlite:///" + str(repo / "mlflow.db")
    first = subprocess.Popen(
        ["whale-reid", "identify", "data/demo/test_images", "--out", str(out)],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".run.*.staging")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second could start"
    second = run_in(repo, "whale-reid", "identify", "data/demo/test_images", "--out", str(out))
    stdout, stderr = first.communicate(timeout=600)
    assert second.returncode == 2 and "another identify run is writing this folder now" in second.stderr
    assert second.stderr.strip().count("\n") == 0 and "Traceback" not in second.stderr
    assert first.returncode == 0, stderr[-2000:]
    run_id = verify_run(out)
    photo = read_table(out / "matches.csv")["photo"].iloc[0]
    decisions = tmp_path / "decisions.csv"
    decisions.write_text(f"photo,decision,individual_id\n{photo},new,seen-once\n")
    enrolled = run_in(repo, "whale-reid", "enroll", str(decisions), "--identify-dir", str(out))
    assert enrolled.returncode == 0, enrolled.stderr[-2000:]
    assert verify_run(out) == run_id and not list(tmp_path.glob(".run.*"))  # no staging folder, no lock file


def test_a_bomb_header_and_a_250_byte_name_in_a_folder_do_not_abort_the_survey(
    identified: IdentifyRun, tmp_path: Path
) -> None:
    survey = tmp_path / "survey"
    survey.mkdir()
    photo = sorted((identified.repo / "data/demo/test_images").iterdir())[0]
    shutil.copy(photo, survey / "ordinary.jpg")
    shutil.copy(photo, survey / f"{LONG_STEM}.jpg")
    bomb = survey / "bomb.ppm"
    bomb.write_bytes(b"P6\n20000 20000\n255\n")
    assert len(bomb.read_bytes()) == 19
    proc = run_in(identified.repo, "whale-reid", "identify", str(survey), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    matches = read_table(tmp_path / "out/matches.csv")
    errors = matches[matches["error"] != ""]
    assert errors["photo"].tolist() == [str(bomb)] and "decompression-bomb guard" in errors["error"].iloc[0]
    for name in ("ordinary.jpg", f"{LONG_STEM}.jpg"):
        assert matches.loc[matches["photo"] == str(survey / name), "rank"].tolist() == ["1", "2", "3", "4", "5"]
