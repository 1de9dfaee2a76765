"""Seeded fuzzing: a few hundred mutated CSV rows and image files through `prepare`, `crop`'s table and
photo reading and `identify`'s photo discovery; random odd file names through identify's discovery, crops
and outputs; byte flips in the gallery, selection and embedding files; random decisions and broken
catalogue files through `enroll` — each ends in success or one `InputError` (the one-line exit 2), never
another exception (a traceback); nothing is written outside the output folders, and a refused enroll
leaves CURRENT and the log as they were."""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.pipelines.conftest import make_kaggle_layout, run_stage, write_params
from tests.reliability.catalogue import make_repo, write_run
from whale_core import InputError, atomic_write_csv, load_rgb, safe_name
from whale_detector import CropConfig, crop_regions
from whale_reid.answers.ensemble import load_embeddings, read_selection
from whale_reid.catalogue.enroll import enroll
from whale_reid.catalogue.versions import current_version
from whale_reid.dataset.kaggle import read_test, read_train
from whale_reid.identify.queries import (
    QUERY_SPLIT,
    check_photos,
    content_id,
    find_photos,
    path_column,
    photo_key,
    photo_text,
)
from whale_retrieval import GalleryIndex

SEED = 20240615
TOKENS = ["", " ", "NA", "null", "n/a", "None", "nan", "../x.jpg", "../../../etc/passwd", "/etc/hostname",
          "C:\\x.jpg", "..", ".", "a" * 300, "id 7", "\t", '"', "'", ",", "é", "\x00", "new_individual", "train01.jpg",
          "TRAIN01.JPG", "train01.png", "\ufeffimage", "x\r\ny", "🐋", "sub/../train02.jpg", "-1", "1e309",
          "beluga"]  # fmt: skip


def _tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and not str(p.relative_to(root)).startswith(skip)}  # fmt: skip


def _mutated_csv(text: str, rng: random.Random) -> str:
    rows = [line.split(",") for line in text.strip("\n").split("\n")]
    for _ in range(rng.randint(1, 3)):
        kind, row = rng.random(), rng.randrange(len(rows))
        if kind < 0.6 and rows[row]:
            rows[row][rng.randrange(len(rows[row]))] = rng.choice(TOKENS)
        elif kind < 0.75:
            rows.append([rng.choice(TOKENS) for _ in range(rng.randint(1, 5))])
        elif kind < 0.85:
            rows[row] = rows[row][: rng.randint(0, len(rows[row]))]
        elif kind < 0.95:
            rows.insert(rng.randrange(len(rows) + 1), [])
        else:
            rows[row].append(rng.choice(TOKENS))
    return "\n".join(",".join(r) for r in rows) + rng.choice(["\n", "\r\n", ""])


def _mutated_image(good: bytes, rng: random.Random) -> bytes:
    data = bytearray(good)
    kind = rng.random()
    if kind < 0.3:
        return bytes(data[: rng.randrange(len(data))])
    if kind < 0.6:
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind < 0.7:
        return b"P6\n%d %d\n255\n" % (rng.choice([1, 20000, 10**9]), rng.choice([0, 1, 20000]))
    if kind < 0.8:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    if kind < 0.9:
        start = rng.randrange(len(data))
        return bytes(data[:start] + bytes(rng.randrange(256) for _ in range(50)) + data[start:])
    return good[:2] + good  # a doubled start-of-image marker


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    make_kaggle_layout(tmp_path, n_train=6, n_test=2)
    write_params(tmp_path, {"data": {"raw_dir": "raw"}, "prepare": {"n_folds": 2, "seed": 1}})
    return tmp_path


def test_mutated_csv_rows_through_prepare(layout: Path) -> None:
    rng = random.Random(SEED)
    raw = layout / "raw"
    train_text, sample_text = (raw / "train.csv").read_text(), (raw / "sample_submission.csv").read_text()
    before = _tree(layout.parent, skip=(f"{layout.name}/raw/",))
    outcomes = {"accepted": 0, "refused": 0}
    for case in range(240):
        target, text = (raw / "train.csv", train_text) if case % 4 else (raw / "sample_submission.csv", sample_text)
        target.write_text(_mutated_csv(text, rng), encoding="utf-8", errors="surrogateescape")
        try:
            train, _ = read_train(raw), read_test(raw)
            assert not train["individual_id"].str.contains(r"\s").any()  # a submission could not hold it
            outcomes["accepted"] += 1
        except InputError as err:
            assert "\n" not in str(err).strip(), str(err)
            outcomes["refused"] += 1
        target.write_text(text)
    assert outcomes["accepted"] > 20 and outcomes["refused"] > 100, outcomes
    assert _tree(layout.parent, skip=(f"{layout.name}/raw/",)) == before  # reading wrote nothing anywhere
    for _ in range(3):  # and the stage itself: one line and exit 2, or its outputs only
        (raw / "train.csv").write_text(_mutated_csv(train_text, rng))
        proc = run_stage("prepare", layout)
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert {p.split("/")[0] for p in _tree(layout)} <= {"raw", "params.yaml", "data", "metrics"}


def test_mutated_photos_through_crop_and_identify_reading(layout: Path) -> None:
    rng = random.Random(SEED + 1)
    buffer = io.BytesIO()
    pixels = np.random.default_rng(SEED).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    png = buffer.getvalue()
    survey = layout / "survey"
    survey.mkdir()
    for i in range(200):
        name = rng.choice([f"p{i}.jpg", f"p{i}.png", f"p{i}", f"{'x' * 200}{i}.jpg", f"é {i}.JPG"])
        (survey / name).write_bytes(_mutated_image(rng.choice([jpeg, png]), rng))
    (survey / "fine.jpg").write_bytes(jpeg)
    before = _tree(layout.parent)
    for path in sorted(survey.iterdir()):  # the crop stage and the embedder read every photo with load_rgb
        try:
            load_rgb(path)
        except InputError as err:
            assert str(err).startswith(str(path)), err
    photos = find_photos([survey])
    readable, errors = check_photos(photos)
    assert survey / "fine.jpg" in readable and len(readable) + len(errors) == len(photos)
    assert all(e["error"].startswith(e["photo"]) for e in errors)
    assert _tree(layout.parent) == before


NAME_PARTS = ["2024.06.01", " ", "#", "?", "%", "\\", "é", "🐋", ".", "..x", "a" * 120, "\x7f", "-", "=", "NA",
              os.fsdecode(b"\xe9"), os.fsdecode(b"\xff\xfe"), "__proto__", "con", "x.jpg"]  # fmt: skip


def test_random_file_names_are_identified_and_written(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    survey = tmp_path / "survey"
    for i in range(60):
        folder = survey / rng.choice(["", "a", "b", "a/c"])
        stem = "".join(rng.choice(NAME_PARTS) for _ in range(rng.randint(1, 4)))
        name = f"{stem}.{rng.choice(['jpg', 'JPG', 'png', 'jpeg'])}".encode("utf-8", "surrogateescape")[-250:]
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 16), (i, 90, 140)).save(folder / os.fsdecode(name), format="PNG")
    out = survey / "a" / "identify"  # an earlier run's output inside the survey: never input
    (out / "crops").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(out / "crops" / "00000-x.jpg")
    photos = find_photos([survey], out=out)
    readable, errors = check_photos(photos)
    assert len(readable) == len(photos) == 60 and not errors
    keys = [photo_key(i, p) for i, p in enumerate(readable)]
    images = pd.DataFrame({"image": keys, "split": QUERY_SPLIT, "path": path_column(readable)})
    no_boxes = pd.DataFrame(columns=["image", "region", "x1", "y1", "x2", "y2", "conf"])
    crop_regions(images, no_boxes, tmp_path / "crops", CropConfig(workers=1))
    assert all((tmp_path / "crops/fullbody/query" / f"{key}.jpg").is_file() for key in keys)
    ids = [content_id(p) for p in readable]
    assert all(safe_name(f"{i}.jpg") for i in ids)
    atomic_write_csv(tmp_path / "matches.csv", pd.DataFrame({"photo": map(photo_text, readable), "image_id": ids}))


def _flip(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    kind = rng.random()
    if kind < 0.4:
        data = data[: rng.randrange(len(data))]
    else:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))


def test_tampered_gallery_selection_and_embedding_files_are_named(tmp_path: Path) -> None:
    rng = random.Random(SEED + 3)
    outcomes = {"refused": 0, "intact": 0}
    for case in range(60):
        root = make_repo(tmp_path / f"r{case}")
        target = rng.choice(["gallery.npz", "gallery.json", "selection.json", "train.npz"])
        if target == "selection.json":
            path = root / target
            path.write_text(json.dumps({"members": [{"model": "demo", "fold": 0, "cv_map5": 0.5}]}))
            load = lambda p=path: read_selection(p)  # noqa: E731
        elif target == "train.npz":
            path = root / target
            np.savez(path, image=np.asarray(["a.jpg", "b.jpg"]), emb=np.eye(2, 4, dtype=np.float32))
            load = lambda p=path: load_embeddings(p)  # noqa: E731
        else:
            path = root / "models/gallery" / target
            load = lambda r=root: GalleryIndex.load(r / "models/gallery")  # noqa: E731
        _flip(path, rng)
        try:
            load()
            outcomes["intact"] += 1  # a flip inside JSON whitespace or a string can leave a valid file
        except InputError as err:
            assert "\n" not in str(err) and str(path.parent) in str(err), err
            outcomes["refused"] += 1
    assert outcomes["refused"] > 40, outcomes


def test_random_decisions_and_catalogue_faults_leave_current_as_it_was_or_move_it_whole(tmp_path: Path) -> None:
    rng = random.Random(SEED + 4)
    repo = make_repo(tmp_path / "repo")
    write_run(tmp_path / "identify", repo, [f"q{i}.jpg" for i in range(4)],
              [f"crops/fullbody/query/{i:05d}-p{i}.jpg" for i in range(4)])  # fmt: skip
    ids = ["id0", "ID0", "id1", "new7", "New7", "=x", "+1", "a\x1bb", "n\x00", "new_individual", "", "x y", "é"]
    faults = [None, None, "metadata.csv", "log.csv"]
    outcomes = {"enrolled": 0, "refused": 0}
    for case in range(40):
        rows = [
            f"survey/p{rng.choice([0, 1, 2, 3, 0, 1, 2, 3, 4])}.jpg,{rng.choice(['match', 'new'] * 4 + ['maybe'])},"
            + (rng.choice(ids[:4]) if rng.random() < 0.7 else rng.choice(ids))
            for _ in range(rng.randint(1, 2))
        ]
        decisions = tmp_path / f"d{case}.csv"
        decisions.write_text("photo,decision,individual_id\n" + "\n".join(rows) + "\n", encoding="utf-8")
        fault = rng.choice(faults)
        if fault:
            (repo / "models/catalogue").mkdir(parents=True, exist_ok=True)
            (repo / "models/catalogue" / fault).write_bytes(b'image_id,date\nx,2024-99-99\n\xff"\n')
        before, log = current_version(repo), read_log_bytes(repo)
        try:
            result = enroll(repo, decisions, tmp_path / "identify", redecide=rng.random() < 0.5)
            outcomes["enrolled"] += 1
            assert result.version is None or current_version(repo) == result.version
        except InputError as err:
            assert "\n" not in str(err), err
            assert current_version(repo) == before and read_log_bytes(repo) == log
            outcomes["refused"] += 1
        if fault:
            (repo / "models/catalogue" / fault).unlink()
    assert outcomes["enrolled"] >= 3 and outcomes["refused"] >= 10, outcomes


def read_log_bytes(repo: Path) -> bytes:
    path = repo / "models/catalogue/log.csv"
    return path.read_bytes() if path.is_file() else b""
