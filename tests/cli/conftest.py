"""Shared runs of the `whale-reid` command on the tiny pipeline, and a headless-Chromium page reader."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.conftest import run_in

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync",
)  # fmt: skip


@dataclass(frozen=True)
class IdentifyRun:
    """One `whale-reid identify` run: the repo, its output folder, the process and the extra inputs."""

    repo: Path
    out: Path
    proc: subprocess.CompletedProcess
    truncated: Path
    not_an_image: Path
    grayscale_png: Path
    notes: Path

    @property
    def matches(self) -> pd.DataFrame:
        return pd.read_csv(self.out / "matches.csv", dtype=str, keep_default_na=False)


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def identified(tiny_pipeline: Path, tmp_path_factory) -> IdentifyRun:
    """identify on the demo test photos plus a folder of odd files: a truncated JPEG, a grayscale PNG
    without an image extension, a text note; and a text file named .jpg given explicitly."""
    tmp = tmp_path_factory.mktemp("identify")
    extra = tmp / "survey" / "day2"
    extra.mkdir(parents=True)
    first = sorted((tiny_pipeline / "data/demo/test_images").iterdir())[0]
    truncated = extra / "truncated.jpg"
    truncated.write_bytes(first.read_bytes()[:400])
    grayscale = extra / "grey_photo.dat"
    Image.open(first).convert("L").save(grayscale, format="PNG")
    notes = extra / "notes.txt"
    notes.write_text("weather: calm\n")
    bogus = tmp / "bogus.jpg"
    bogus.write_text("not a photo")
    out = tmp / "run"
    proc = run_in(tiny_pipeline, "whale-reid", "identify", "data/demo/test_images", str(tmp / "survey"), str(bogus),
                  "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return IdentifyRun(tiny_pipeline, out, proc, truncated, bogus, grayscale, notes)


def chromium() -> str:
    """The headless browser's executable, or a skip with the reason."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")
    return found


def dump_dom(page: Path, profile_dir: Path) -> str:
    """The page's DOM after its load handlers ran, as headless Chromium serialises it."""
    proc = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def demo_truth(repo: Path) -> pd.DataFrame:
    """The demo's hidden truth for the test photos, with `known` = the individual is in train."""
    truth = read_table(repo / "data/demo/test_labels.csv")
    known = set(read_table(repo / "data/prepared/train.csv")["individual_id"])
    return truth.assign(known=truth["individual_id"].isin(known))
