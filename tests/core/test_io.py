from __future__ import annotations

import errno
import json
import os

import pandas as pd
import pytest

from whale_core import atomic_link, atomic_path, atomic_write_csv, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "weights.bin"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_link_replaces_the_target_with_the_same_file_and_survives_a_rewrite(tmp_path):
    source, target = tmp_path / "features" / "train.npz", tmp_path / "gallery" / "features.npz"
    atomic_write_text(source, "keypoints v1")
    atomic_write_text(target, "an older gallery's")
    assert atomic_link(source, target) == target
    assert target.read_text() == "keypoints v1" and target.stat().st_ino == source.stat().st_ino
    assert [p.name for p in target.parent.iterdir()] == ["features.npz"]  # no temporary left behind
    atomic_write_text(source, "keypoints v2")  # a re-run replaces the source by renaming: the link keeps v1
    assert target.read_text() == "keypoints v1"


def test_link_copies_where_the_filesystem_cannot_link(tmp_path, monkeypatch):
    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link", src)

    source, target = tmp_path / "a.bin", tmp_path / "b" / "a.bin"
    source.write_bytes(b"\x00\x01" * 1000)
    monkeypatch.setattr(os, "link", cross_device)
    atomic_link(source, target)
    assert target.read_bytes() == source.read_bytes() and target.stat().st_ino != source.stat().st_ino
    assert [p.name for p in target.parent.iterdir()] == ["a.bin"]
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        atomic_link(tmp_path / "missing.bin", target)
    assert target.read_bytes() == source.read_bytes()


def test_temp_name_keeps_suffix_for_format_sniffing_writers(tmp_path):
    with atomic_path(tmp_path / "crop.jpg") as tmp:
        assert tmp.suffix == ".jpg" and tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_bytes(b"x")
    assert (tmp_path / "crop.jpg").read_bytes() == b"x"


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "m.json", {"map5": float("nan")})
    assert not any(tmp_path.iterdir())


def test_csv_round_trip(tmp_path):
    frame = pd.DataFrame({"image": ["a b.jpg", "é.jpg"], "fold": [0, 1]})
    atomic_write_csv(tmp_path / "t.csv", frame)
    assert b"\r\n" not in (tmp_path / "t.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame)
