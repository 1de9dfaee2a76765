"""Hostile and broken input through the real stages: one clear line naming the file/row, or a documented
fallback — never a stack trace, a silent wrong answer, or a file outside the output folders.

Cases `tests/pipelines/test_prepare.py` already runs (bad CSVs, empty/truncated photos, CMYK, grayscale,
EXIF, BOM/CRLF/extra columns, duplicates, `..` and absolute names, an empty test set) are not repeated.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.pipelines.conftest import make_kaggle_layout, run_stage, write_params
from tests.reliability.conftest import run_module


@pytest.fixture
def workdir(tmp_path):
    make_kaggle_layout(tmp_path)
    write_params(tmp_path, {"data": {"raw_dir": "raw"}, "prepare": {"n_folds": 3, "seed": 1}})
    return tmp_path


def _png_claiming(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header claims `width`×`height` (IHDR, a tiny IDAT, IEND): nothing is allocated.

    The IDAT chunk matters: without it PIL fails to parse the header and the guard is never reached.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _assert_one_clear_line(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for needle in needles:
        assert needle in last, last


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (b"just some text, not a photo\n", ("train05.jpg", "not an image file")),
        (_png_claiming(20_000, 20_000), ("train05.jpg", "decompression-bomb guard")),
    ],
    ids=["text-named-jpg", "20000x20000-header"],
)
def test_unusable_photo_is_one_line_naming_it(workdir, content, needles):
    (workdir / "raw/train_images/train05.jpg").write_bytes(content)
    proc = run_stage("prepare", workdir)
    _assert_one_clear_line(proc, *needles)
    assert not (workdir / "data/prepared").exists()


def test_names_equal_but_for_the_suffix_are_refused(workdir):
    """Crops are stored as `<name>.jpg`: `a.jpg` and `a.png` would silently share one crop."""
    images = workdir / "raw/train_images"
    (images / "train00.png").write_bytes((images / "train01.jpg").read_bytes())
    with (workdir / "raw/train.csv").open("a") as fh:
        fh.write("train00.png,beluga,id2\n")
    _assert_one_clear_line(run_stage("prepare", workdir), "train.csv lines 2 and 10", "differ only in suffix")


def test_alpha_16bit_and_one_pixel_photos_pass(workdir):
    images = workdir / "raw/train_images"
    rgba = np.random.default_rng(2).integers(0, 255, (20, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(images / "train00.jpg", format="PNG")
    deep = np.random.default_rng(3).integers(0, 65535, (20, 30), dtype=np.uint16)
    Image.fromarray(deep).save(images / "train01.jpg", format="PNG")
    assert Image.open(images / "train01.jpg").mode.startswith("I")
    Image.new("RGB", (1, 1), (9, 9, 9)).save(images / "train02.jpg")
    proc = run_stage("prepare", workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(pd.read_csv(workdir / "data/prepared/train.csv")) == 8


def test_nothing_is_written_outside_the_output_folders(workdir):
    """A name that climbs out of the images folder is refused before any file is read or written."""
    outside = workdir.parent / f"{workdir.name}-outside.jpg"
    Image.new("RGB", (8, 8)).save(outside)
    with (workdir / "raw/train.csv").open("a") as fh:
        fh.write(f"../../../{outside.name},beluga,id1\n")
    before = {p for p in workdir.parent.iterdir()}
    _assert_one_clear_line(run_stage("prepare", workdir), "train.csv line 10", "would escape the images folder")
    assert {p for p in workdir.parent.iterdir()} == before
    assert not (workdir / "data").exists() and not (workdir / "metrics").exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("stage", ["tune", "predict"])
def test_corrupt_embeddings_are_named(pipeline_copy, stage, bad):
    import json

    member = json.loads((pipeline_copy / "outputs/selection.json").read_text())["members"][0]
    path = pipeline_copy / "embeddings" / member["model"] / f"fold{member['fold']}" / "train.npz"
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    arrays["emb"][3, 0] = bad
    np.savez(path, **arrays)
    output = pipeline_copy / ("outputs/postprocess.json" if stage == "tune" else "outputs/submission.csv")
    before = output.read_bytes()
    proc = run_module(pipeline_copy, stage)
    rel = f"embeddings/{member['model']}/fold{member['fold']}/train.npz"
    _assert_one_clear_line(proc, rel, repr(str(arrays["image"][3])), "NaN or inf")
    assert output.read_bytes() == before


def test_empty_test_set_gives_a_header_only_submission(pipeline_copy):
    (pipeline_copy / "data/prepared/test.csv").write_text("image\n")
    proc = run_module(pipeline_copy, "predict")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (pipeline_copy / "outputs/submission.csv").read_text() == "image,predictions\n"
