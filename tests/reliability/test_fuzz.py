"""Seeded fuzzing: a few hundred mutated CSV rows and image files through `prepare`, `crop`'s table and
photo reading and `identify`'s photo discovery — each ends in success or one `InputError` (the one-line
exit 2), never another exception (a traceback), and nothing is written outside the output folders."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.pipelines.conftest import make_kaggle_layout, run_stage, write_params
from whale_core import InputError, load_rgb
from whale_reid.identify import check_photos, find_photos
from whale_reid.kaggle import read_test, read_train

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
