"""The catalogue's audit trail on a small synthetic gallery (seconds): enroll logs every decision, revert moves
CURRENT back (logged), merge is a logged decision, export is one row per photo with its metadata."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_in
from tests.reliability.catalogue import make_repo, write_crop, write_query_file
from whale_core import read_table
from whale_reid.catalogue.commands import export, merge, revert
from whale_reid.catalogue.enroll import enroll
from whale_reid.catalogue.metadata import CATALOGUE_METADATA
from whale_reid.catalogue.run_folder import RunFolder
from whale_reid.catalogue.versions import CATALOGUE, current_gallery, current_version


def write_run_with_metadata(out: Path, repo: Path, n: int, prefix: str) -> str:
    """An identify run of `n` photos (`survey/p<i>.jpg`) with a metadata.csv, as the CLI writes it."""
    ids = [f"{prefix}{i}" for i in range(n)]
    crops = [f"crops/fullbody/query/{i}.jpg" for i in ids]
    with RunFolder(out) as run:
        for crop in crops:
            write_crop(run.path / crop)
        write_query_file(run.path, repo, ids, crops, run.run_id)
        meta = {"encounter": "E1", "date": "2024-06-01", "location": "Tromsø", "side": "left"}
        pd.DataFrame({"photo": [f"survey/p{i}.jpg" for i in range(n)], **meta}).to_csv(run.path / CATALOGUE_METADATA)
        run.commit()
    return run.run_id


def decisions(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    pd.DataFrame(rows, columns=["photo", "decision", "individual_id"]).to_csv(path, index=False)
    return path


@pytest.fixture
def catalogue(tmp_path: Path) -> dict:
    repo = make_repo(tmp_path / "repo")
    run_id = write_run_with_metadata(tmp_path / "run", repo, 3, "q")
    three = decisions(tmp_path / "d.csv", [("survey/p0.jpg", "new", "Ann"), ("survey/p1.jpg", "match", "id0"),
                                           ("survey/p2.jpg", "match", "id1")])  # fmt: skip
    result = enroll(repo, three, tmp_path / "run", reviewer="ana")
    assert result.version == "v0001"
    return {"repo": repo, "run_id": run_id, "tmp": tmp_path}


def test_enroll_logs_each_decision_and_revert_restores_the_previous_version(catalogue: dict) -> None:
    repo, tmp = catalogue["repo"], catalogue["tmp"]
    log = read_table(repo / CATALOGUE / "log.csv")
    columns = ["action", "photo", "individual_id", "previous", "reviewer", "identify_run", "version"]
    assert log[columns].values.tolist() == [
        ["new", "survey/p0.jpg", "Ann", "", "ana", catalogue["run_id"], "v0001"],
        ["match", "survey/p1.jpg", "id0", "", "ana", catalogue["run_id"], "v0001"],
        ["match", "survey/p2.jpg", "id1", "", "ana", catalogue["run_id"], "v0001"],
    ]  # fmt: skip
    assert log["time"].str.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00").all()
    write_run_with_metadata(tmp / "run2", repo, 1, "r")
    enroll(repo, decisions(tmp / "d2.csv", [("survey/p0.jpg", "new", "Bo")]), tmp / "run2")  # the OS user decides
    assert current_version(repo) == "v0002" and len(current_gallery(repo)[0]) == 6 + 4
    before = (repo / CATALOGUE / "log.csv").read_bytes()
    assert revert(repo, "v0001", reviewer="ana") == "v0002"
    gallery, where = current_gallery(repo)
    assert where.name == "v0001" and len(gallery) == 6 + 3 and "Bo" not in set(gallery.labels)
    after = (repo / CATALOGUE / "log.csv").read_bytes()
    assert after.startswith(before)  # appended, never rewritten
    last = read_table(repo / CATALOGUE / "log.csv").iloc[-1]
    assert (last["action"], last["previous"], last["version"], last["reviewer"]) == ("revert", "v0002", "v0001", "ana")
    revert(repo, "base")
    assert current_gallery(repo)[1] == repo / "models/gallery"


def test_merge_is_a_logged_decision_and_export_has_every_photo(catalogue: dict, tmp_path: Path) -> None:
    repo = catalogue["repo"]
    version, moved = merge(repo, "id0", "Ann", reviewer="ana")
    assert (version, moved) == ("v0002", 1)
    gallery, _ = current_gallery(repo)
    assert "Ann" not in set(gallery.labels) and (gallery.labels == "id0").sum() == 2 + 2
    last = read_table(repo / CATALOGUE / "log.csv").iloc[-1]
    assert (last["action"], last["image_id"], last["individual_id"], last["previous"]) == ("merge", "q0", "id0", "Ann")
    out = tmp_path / "export.csv"
    assert export(repo, out) == 9
    table = read_table(out).set_index("image_id")
    assert list(table.columns) == ["photo", "individual_id", "species", "encounter", "date", "location", "side",
                                   "decision_source", "reviewer", "decided_at"]  # fmt: skip
    assert table.loc["g0.jpg", "decision_source"] == "trained gallery" and table.loc["g0.jpg", "location"] == ""
    assert table.loc["q0"][["photo", "individual_id", "decision_source", "location", "encounter"]].tolist() == [
        "survey/p0.jpg", "id0", "merge", "Tromsø", "E1"
    ]  # fmt: skip
    assert table.loc["q1"][["individual_id", "decision_source", "reviewer"]].tolist() == ["id0", "match", "ana"]


def test_catalogue_mistakes_are_one_line(catalogue: dict) -> None:
    repo = catalogue["repo"]
    for args, message in ((["revert", "v0042"], "no version 'v0042'"), (["revert", "../x"], "not a plain file name"),
                          (["merge", "id0", "nobody"], "individual 'nobody' is not in the catalogue")):  # fmt: skip
        proc = run_in(repo, "whale-reid", "catalogue", *args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_exported_cells_never_start_a_spreadsheet_formula() -> None:
    from whale_reid.catalogue.commands import spreadsheet_safe

    assert [spreadsheet_safe(c) for c in ("=HYPERLINK(1)", "+1", "-2", "@x", "ind_7", "")] == [
        "'=HYPERLINK(1)", "'+1", "'-2", "'@x", "ind_7", ""]  # fmt: skip
