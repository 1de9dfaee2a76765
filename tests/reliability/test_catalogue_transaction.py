"""The catalogue as one transaction: a version becomes CURRENT only with its metadata and log rows written; the
log and the catalogue's files are never overwritten by an export; versions are readable as the umask says;
conflicting re-decisions, case-twin ids and hostile ids are refused; versions share unchanged keypoint files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.reliability.catalogue import make_repo, unit_rows, write_crop, write_decisions, write_query_file
from whale_core import InputError, file_sha256
from whale_matcher import Features, save_features
from whale_reid.answers.verification import (
    FEATURES_SHA256,
    features_path,
    gallery_features_path,
    query_features_path,
    save_gallery_features,
)
from whale_reid.catalogue.audit import read_log
from whale_reid.catalogue.commands import export, merge, printable_log
from whale_reid.catalogue.decisions import read_decisions
from whale_reid.catalogue.enroll import enroll
from whale_reid.catalogue.metadata import read_catalogue_metadata
from whale_reid.catalogue.run_folder import RunFolder
from whale_reid.catalogue.versions import (
    BASE_GALLERY,
    CATALOGUE,
    current_gallery,
    current_version,
    enrolled_features_path,
    load_version_features,
)
from whale_retrieval import GalleryIndex

CALIBRATED = {
    "threshold": 0.5, "k_neighbors": 3, "shortlist": 3, "match": {"regions": ["fullbody"]},
    "calibrator": {"kind": "logistic", "features": ["similarity", "inliers_fullbody"], "coef": [4.0, 0.1]},
}  # fmt: skip


def _features(ids: list[str], seed: int) -> Features:
    rng, counts = np.random.default_rng(seed), np.arange(len(ids)) % 3 + 2
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    desc = rng.random((offsets[-1], 8), dtype=np.float32)
    xy = rng.random((offsets[-1], 2), dtype=np.float32) * 10
    return Features(np.asarray(ids), offsets, xy, desc, np.full((len(ids), 2), 16, np.int32))


def _verified_repo(root: Path) -> Path:
    """A repo whose trained gallery answers with local evidence: features beside it, their digest recorded."""
    path = gallery_features_path(root / BASE_GALLERY, "fullbody")
    path.parent.mkdir(parents=True)
    save_features(path, _features([f"g{i}.jpg" for i in range(6)], 0))
    settings = {**CALIBRATED, FEATURES_SHA256: {"fullbody": file_sha256(path)}}
    GalleryIndex.build(unit_rows(6, 0), [f"g{i}.jpg" for i in range(6)], [f"id{i % 3}" for i in range(6)],
                       ["beluga"] * 6, settings).save(root / BASE_GALLERY)  # fmt: skip
    return root


def _run(out: Path, repo: Path, n: int, *, metadata: str | None = None, features: bool = False, tag: str = "a"):
    """An identify run of `n` photos `survey/p<i>.jpg` (image ids `<tag>-p<i>.jpg`), optionally with a metadata
    sidecar and the query photos' keypoints, written through RunFolder as the CLI writes it."""
    ids, keys = [f"{tag}-p{i}.jpg" for i in range(n)], [f"{i:05d}-p{i}" for i in range(n)]
    with RunFolder(out) as run:
        for key in keys:
            write_crop(run.path / f"crops/fullbody/query/{key}.jpg")
        write_query_file(run.path, repo, ids, [f"crops/fullbody/query/{k}.jpg" for k in keys], run.run_id)
        if metadata is not None:
            (run.path / "metadata.csv").write_text(metadata)
        if features:
            save_features(query_features_path(run.path, "fullbody"), _features(keys, 1))
        run.commit()
    return ids


def test_a_bad_catalogue_metadata_row_fails_before_anything_is_written(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    _run(tmp_path / "identify", repo, 2, metadata="photo,date\nsurvey/p0.jpg,2024-06-01\nsurvey/p1.jpg,2024-06-02\n")
    catalogue_metadata = repo / CATALOGUE / "metadata.csv"
    catalogue_metadata.parent.mkdir(parents=True)
    catalogue_metadata.write_text("image_id,date\ng0.jpg,2024-13-45\n")
    decisions = write_decisions(tmp_path / "decisions.csv", 2)
    with pytest.raises(InputError, match=r"metadata.csv: line 2: date '2024-13-45' is not YYYY-MM-DD"):
        enroll(repo, decisions, tmp_path / "identify")
    assert current_version(repo) == "base" and not (repo / CATALOGUE / "log.csv").exists()
    catalogue_metadata.write_text("image_id,date\ng0.jpg,2024-05-30\n")
    result = enroll(repo, decisions, tmp_path / "identify")  # the fixed catalogue: the same two photos enrolled
    assert len(result.added) == 2 and current_version(repo) == result.version
    assert read_catalogue_metadata(repo / CATALOGUE)["date"].to_dict() == {
        "g0.jpg": "2024-05-30", "a-p0.jpg": "2024-06-01", "a-p1.jpg": "2024-06-02"
    }  # fmt: skip
    assert len(read_log(repo / CATALOGUE)) == 2


def test_export_never_overwrites_the_log_or_a_catalogue_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    _run(tmp_path / "identify", repo, 1)
    enroll(repo, write_decisions(tmp_path / "decisions.csv", 1), tmp_path / "identify")
    log_bytes = (repo / CATALOGUE / "log.csv").read_bytes()
    for target in (repo / CATALOGUE / "log.csv", repo / CATALOGUE / "versions/v0001/enrolled.csv",
                   repo / BASE_GALLERY / "export.csv"):  # fmt: skip
        with pytest.raises(InputError, match="whose files the export must not replace"):
            export(repo, target)
    assert (repo / CATALOGUE / "log.csv").read_bytes() == log_bytes
    assert export(repo, tmp_path / "catalogue.csv") == 7


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o007, 0o770)])
def test_versions_are_as_readable_as_the_umask_says(tmp_path: Path, umask: int, mode: int) -> None:
    repo = make_repo(tmp_path / "repo")
    _run(tmp_path / "identify", repo, 1)
    previous = os.umask(umask)
    try:
        result = enroll(repo, write_decisions(tmp_path / "decisions.csv", 1), tmp_path / "identify")
    finally:
        os.umask(previous)
    assert (repo / CATALOGUE / "versions" / result.version).stat().st_mode & 0o777 == mode


def test_a_conflicting_redecision_is_reported_then_applied_with_the_flag(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    _run(tmp_path / "identify", repo, 2)
    enroll(repo, write_decisions(tmp_path / "first.csv", 2), tmp_path / "identify")
    second = tmp_path / "second.csv"
    pd.DataFrame({"photo": ["survey/p0.jpg"], "decision": ["match"], "individual_id": ["id1"]}).to_csv(second)
    with pytest.raises(InputError, match=r"already in the gallery as 'new0', this decision says 'id1' \(re-run with"):
        enroll(repo, second, tmp_path / "identify")
    assert current_version(repo) == "v0001"
    result = enroll(repo, second, tmp_path / "identify", redecide=True)
    gallery, _ = current_gallery(repo)
    assert dict(zip(gallery.image_ids, gallery.labels))["a-p0.jpg"] == "id1" and len(result.redecided) == 1
    last = read_log(repo / CATALOGUE).iloc[-1]
    assert (last["action"], last["individual_id"], last["previous"], last["version"]) == ("match", "id1", "new0",
                                                                                          "v0002")  # fmt: skip
    assert enroll(repo, second, tmp_path / "identify", redecide=True).version is None  # the same again: nothing


@pytest.mark.parametrize(
    ("decision", "name", "message"),
    [
        ("new", "ID0", "new individual 'ID0' differs only in case from 'id0'"),
        ("match", "Id1", "individual 'Id1' is not in the gallery; did you mean 'id1'?"),
    ],
)
def test_ids_differing_only_in_case_collide(tmp_path: Path, decision: str, name: str, message: str) -> None:
    repo = make_repo(tmp_path / "repo")
    _run(tmp_path / "identify", repo, 1)
    decisions = tmp_path / "decisions.csv"
    pd.DataFrame({"photo": ["survey/p0.jpg"], "decision": [decision], "individual_id": [name]}).to_csv(decisions)
    with pytest.raises(InputError, match=message):
        enroll(repo, decisions, tmp_path / "identify")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("\x1b[31mred", "holds the control character '\\\\x1b'"),
        ("a\x00b", "holds the control character '\\\\x00'"),
        ("a\u202eb", "holds the control character '\\\\u202e'"),
        ("=HYPERLINK(1)", "starts with '=', which a spreadsheet runs as a formula"),
        ("+41", "starts with '\\+'"),
        ("-2", "starts with '-'"),
        ("@SUM", "starts with '@'"),
    ],
)
def test_hostile_ids_are_refused_naming_the_line(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / "decisions.csv"
    path.write_text(f"photo,decision,individual_id\nsurvey/p0.jpg,new,{name}\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"line 2 .*{message}"):
        read_decisions(path)


def test_the_log_is_printed_with_control_characters_escaped() -> None:
    shown = printable_log(pd.DataFrame({"individual_id": ["\x1b]0;owned\x07x"], "action": ["new"]}))
    assert shown["individual_id"].iloc[0] == "\\x1b]0;owned\\x07x"


def test_versions_share_the_trained_keypoints_and_link_unchanged_ones(tmp_path: Path) -> None:
    repo = _verified_repo(tmp_path / "repo")
    ids = _run(tmp_path / "identify", repo, 2, features=True)
    first = enroll(repo, write_decisions(tmp_path / "decisions.csv", 2), tmp_path / "identify")
    v1 = repo / CATALOGUE / "versions" / first.version
    assert sorted(p.name for p in v1.iterdir()) == ["enrolled.csv", "enrolled_features_fullbody.npz", "gallery.json",
                                                     "gallery.npz"]  # fmt: skip
    gallery, gallery_dir = current_gallery(repo)
    features = load_version_features(gallery, gallery_dir, repo / BASE_GALLERY, ["fullbody"])["fullbody"]
    assert features.image.tolist() == [*(f"g{i}.jpg" for i in range(6)), *ids]  # every gallery photo, in order
    version, _ = merge(repo, "new0", "new1")  # no keypoint changes: the file is shared, not copied
    shared = enrolled_features_path(repo / CATALOGUE / "versions" / version, "fullbody")
    assert shared.stat().st_ino == enrolled_features_path(v1, "fullbody").stat().st_ino


def test_swapped_feature_files_are_named(tmp_path: Path) -> None:
    repo = _verified_repo(tmp_path / "repo")
    _run(tmp_path / "identify", repo, 2, features=True)
    enroll(repo, write_decisions(tmp_path / "decisions.csv", 2), tmp_path / "identify")
    gallery, gallery_dir = current_gallery(repo)
    enrolled = enrolled_features_path(gallery_dir, "fullbody")
    save_features(enrolled, _features(["other-a.jpg", "other-b.jpg"], 5))  # another version's, or another split's
    with pytest.raises(InputError, match="enrolled_features_fullbody.npz: not the file recorded in .*gallery.json"):
        load_version_features(gallery, gallery_dir, repo / BASE_GALLERY, ["fullbody"])
    base = gallery_features_path(repo / BASE_GALLERY, "fullbody")
    save_features(base, _features(["t0.jpg", "t1.jpg"], 6))  # the test split's features copied over the gallery's
    trained = GalleryIndex.load(repo / BASE_GALLERY)
    with pytest.raises(InputError, match="features_fullbody.npz: not the file recorded in"):
        load_version_features(trained, repo / BASE_GALLERY, repo / BASE_GALLERY, ["fullbody"])


def test_gallery_features_are_linked_and_keep_their_digest_through_a_rerun(tmp_path: Path) -> None:
    """predict links the train features beside the gallery (no second copy); a later local_features run
    replaces its file by renaming, so the gallery keeps the bytes its recorded digest names."""
    features, gallery_dir, ids = tmp_path / "features", tmp_path / "models" / "gallery", [f"g{i}.jpg" for i in range(6)]
    save_features(features_path("fullbody", "train", features), _features(ids, 0))
    digests = save_gallery_features(gallery_dir, ["fullbody"], features)
    source, placed = features_path("fullbody", "train", features), gallery_features_path(gallery_dir, "fullbody")
    assert placed.stat().st_ino == source.stat().st_ino and digests == {"fullbody": file_sha256(source)}
    gallery = GalleryIndex.build(unit_rows(6, 0), ids, [f"id{i % 3}" for i in range(6)], ["beluga"] * 6,
                                 {**CALIBRATED, FEATURES_SHA256: digests})  # fmt: skip
    save_features(source, _features(["t0.jpg"], 1))  # the stage re-run: a new file under the old name
    loaded = load_version_features(gallery, gallery_dir, gallery_dir, ["fullbody"])["fullbody"]
    assert loaded.image.tolist() == ids and file_sha256(placed) == digests["fullbody"]
