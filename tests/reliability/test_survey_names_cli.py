"""End to end on the tiny pipeline: a survey of odd file names, identified twice into a folder inside the survey,
then enrolled — every photo answered, the second run not reading the first's output, no traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from tests.conftest import run_in
from whale_core import read_table

ODD = ["2024.06.01_whale.jpg", os.fsdecode(b"caf\xe9.jpg"), "back\\slash #1?%.jpg", "a/same.jpg", "b/same.jpg"]


def test_odd_names_are_identified_twice_into_the_survey_and_enrolled(pipeline_copy: Path, tmp_path: Path) -> None:
    repo, survey = pipeline_copy, tmp_path / "s9"
    sources = sorted((pipeline_copy / "data/demo/test_images").iterdir())
    for name, source in zip(ODD, [*sources[:4], sources[3]]):  # the same photo in two folders
        (survey / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, survey / name)
    out = survey / "identify"
    for _ in range(2):
        proc = run_in(repo, "whale-reid", "identify", str(survey), "--out", str(out))
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert "5 of 5 photos identified" in proc.stdout, proc.stdout
    matches = read_table(out / "matches.csv")
    assert len(matches) == 25 and not matches["error"].ne("").any()
    assert sorted(set(matches["photo"].str.slice(len(str(survey)) + 1))) == sorted(
        n.replace("\udce9", "\\xe9") for n in ODD
    )
    photos = sorted(set(matches["photo"]))
    decisions = tmp_path / "decisions.csv"
    ids = [f"Odd-{i}" for i in range(len(photos))]
    pd.DataFrame({"photo": photos, "decision": "new", "individual_id": ids}).to_csv(decisions, index=False)
    proc = run_in(repo, "whale-reid", "enroll", str(decisions), "--identify-dir", str(out))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "4 photos enrolled, 1 already there" in proc.stdout, proc.stdout  # one photo, two folders: once
