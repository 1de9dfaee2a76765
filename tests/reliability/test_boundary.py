"""One error boundary: expected failures — the machine's state (a folder where a file goes, a write limit), corrupt
or hand-edited files of our own, config values out of range — end in one line naming the file or key, exit 2;
only a bug gets a traceback (exit 3)."""

from __future__ import annotations

import errno
import json
import math
import resource
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines._common import run_stage
from tests.pipelines.conftest import make_kaggle_layout
from tests.reliability.catalogue import make_repo
from whale_core import ConfigError, InputError, atomic_write_text, file_sha256, os_error_line
from whale_detector import CropConfig
from whale_embedder import EmbedderConfig
from whale_reid.answers.ensemble import load_embeddings, read_selection
from whale_reid.catalogue.versions import BASE_GALLERY
from whale_reid.cli import main
from whale_reid.dataset.folds import PrepareConfig
from whale_reid.identify.artefacts import member_checkpoint
from whale_retrieval import AnswerRule, GalleryIndex, KnnConfig, TuneConfig


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(argv)
    return int(done.value.code), capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CropConfig.from_dict({"margin_frac": math.nan}), "crop.margin_frac: expected a finite number"),
        (lambda: CropConfig.from_dict({"conf_threshold": math.inf}), "crop.conf_threshold: expected a finite number"),
        (lambda: TuneConfig.from_dict({"n_trials": 0}), "tune.search.n_trials: 0 must be >= 1"),
        (lambda: PrepareConfig.from_dict({"seed": -1}), "prepare.seed: -1 must be in [0, 4294967295]"),
        (lambda: TuneConfig.from_dict({"species_offset_max": -math.inf}), "tune.search.species_offset_max: expected a"),
        (lambda: EmbedderConfig.from_dict({"lr": -1}), "embedder.lr: -1.0 must be in (0, 10)"),
        (lambda: EmbedderConfig.from_dict({"augment": {"hflip_p": 1.5}}), "augment.hflip_p: 1.5 must be in [0, 1]"),
        (lambda: KnnConfig.from_dict({"ivf_nprobe": 0}), "knn.ivf_nprobe: 0 must be >= 1"),
        (lambda: CropConfig.from_dict({"iou_nms": -0.1}), "crop.iou_nms: -0.1 must be in [0, 1]"),
    ],
)
def test_config_values_out_of_range_are_refused_naming_the_key(make, message) -> None:
    """A generic NaN/inf and seed check in `whale_core.Config`, and each class's RANGES."""
    with pytest.raises(ConfigError) as caught:
        make()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _run_prepare(repo: Path, monkeypatch, capsys) -> tuple[int, str]:
    """The prepare stage in-process, as its dvc.yaml `cmd:` runs it (its one-line boundary is `run_stage`'s)."""
    from pipelines import prepare

    monkeypatch.chdir(repo)
    argv = ["prepare", "--raw-dir", "raw", "--out", "data/prepared", "--metrics", "metrics/prepare.json"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        run_stage(prepare.main)()
    return int(done.value.code), capsys.readouterr().err


def test_a_stage_given_a_negative_seed_or_a_folder_for_its_output_is_one_line(tmp_path: Path, monkeypatch, capsys):
    make_kaggle_layout(tmp_path, n_train=6, n_test=2)
    params = {"data": {"raw_dir": "raw"}, "prepare": {"n_folds": 2, "seed": -1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    status, err = _run_prepare(tmp_path, monkeypatch, capsys)
    assert status == 2 and "Traceback" not in err and "prepare.seed" in err.strip().splitlines()[-1], err[-2000:]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "prepare": {"n_folds": 2, "seed": 1}}))
    (tmp_path / "data/prepared/train.csv").mkdir(parents=True)  # a folder where the stage writes a file
    status, err = _run_prepare(tmp_path, monkeypatch, capsys)
    last = err.strip().splitlines()[-1]
    assert status == 2 and "Traceback" not in err, err[-2000:]
    assert last.startswith("error: ") and "data/prepared/train.csv" in last and "give a file name" in last, last


def test_os_errors_name_the_file_and_the_fix() -> None:
    line = os_error_line(OSError(errno.ENOSPC, "No space left on device", "/data/out.csv"))
    fix = "free some space on that disk or write elsewhere, then run it again"
    assert line == f"/data/out.csv: No space left on device ({fix})"
    assert "read-only" in os_error_line(OSError(errno.EROFS, "Read-only file system", "x"))


def test_a_write_cut_short_names_the_target_not_its_temporary_name(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # like a full disk: the write fails part way
    try:
        with pytest.raises(OSError) as caught:
            atomic_write_text(tmp_path / "big.txt", "x" * 5000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert caught.value.filename == str(tmp_path / "big.txt") and caught.value.errno == errno.EFBIG
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temp file left behind


def test_the_cli_turns_a_folder_given_for_a_file_into_one_line(tmp_path: Path, capsys) -> None:
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "out.csv").mkdir()
    status, err = _run_cli(["catalogue", "export", str(tmp_path / "out.csv"), "--repo", str(repo)], capsys)
    assert status == 2 and "Traceback" not in err and err.startswith(f"error: {tmp_path / 'out.csv'}"), err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"members": [{"model": "demo", "fo', "not valid JSON"),
        ('[{"model": "demo", "fold": 0}]', "no 'members' list"),
        ('{"rule": {}}', "no 'members' list"),
        ('{"members": [{"model": "demo"}]}', "members[0] is not a {model, fold} record"),
    ],
)
def test_a_truncated_or_foreign_selection_is_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "selection.json"
    path.write_text(content)
    with pytest.raises(InputError, match=f"^{path}: ") as caught:
        read_selection(path)
    assert message in str(caught.value)


def test_truncated_npz_files_are_named(tmp_path: Path) -> None:
    emb = tmp_path / "train.npz"
    np.savez(emb, image=np.asarray(["a.jpg"]), emb=np.ones((1, 4), np.float32))
    emb.write_bytes(emb.read_bytes()[:100])
    with pytest.raises(InputError, match=f"^{emb}: corrupt or truncated embeddings file"):
        load_embeddings(emb)
    repo = make_repo(tmp_path / "repo")
    arrays = repo / BASE_GALLERY / "gallery.npz"
    arrays.write_bytes(arrays.read_bytes()[:200])
    with pytest.raises(InputError, match="gallery.npz: not the file saved with"):
        GalleryIndex.load(repo / BASE_GALLERY)
    record = json.loads((repo / BASE_GALLERY / "gallery.json").read_text())
    del record["arrays_sha256"]  # a gallery saved before the digest was recorded: the zip reader finds it
    (repo / BASE_GALLERY / "gallery.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="unreadable gallery"):
        GalleryIndex.load(repo / BASE_GALLERY)


def test_a_gallery_swapped_or_hand_edited_is_refused(tmp_path: Path) -> None:
    one, two = make_repo(tmp_path / "one"), make_repo(tmp_path / "two")
    gallery = GalleryIndex.load(two / BASE_GALLERY)
    GalleryIndex.build(gallery.embeddings[:4], gallery.image_ids[:4], gallery.labels[:4]).save(two / BASE_GALLERY)
    (one / BASE_GALLERY / "gallery.npz").write_bytes((two / BASE_GALLERY / "gallery.npz").read_bytes())
    with pytest.raises(InputError, match="its sha256 differs"):
        GalleryIndex.load(one / BASE_GALLERY)
    path = two / BASE_GALLERY / "gallery.json"
    path.write_text(path.read_text().replace('"settings": {}', '"settings": {"threshold": NaN}'))
    with pytest.raises(InputError, match="unreadable gallery"):
        GalleryIndex.load(two / BASE_GALLERY)


CALIBRATOR = {"kind": "logistic", "features": ["similarity"], "coef": [4.0]}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"threshold": 7.5, "k_neighbors": 3}, "threshold: 7.5 must be in [-1.1, 1.1]"),
        ({"threshold": -0.15, "k_neighbors": 3, "calibrator": CALIBRATOR}, "threshold -0.15 is outside [0, 1]"),
        ({"threshold": 0.5, "k_neighbors": 3, "shortlist": -4}, "shortlist -4 must be a whole number >= 0"),
    ],
)
def test_answer_rules_out_of_range_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(InputError, match="^outputs/postprocess.json: ") as caught:
        AnswerRule.from_dict(settings, source="outputs/postprocess.json")
    assert message in str(caught.value)


def test_a_checkpoint_replaced_by_another_folds_is_refused(tmp_path: Path) -> None:
    fold0, fold1 = tmp_path / "models/embedder/demo/fold0", tmp_path / "models/embedder/demo/fold1"
    for n, fold in enumerate((fold0, fold1)):
        fold.mkdir(parents=True)
        (fold / "best.pt").write_bytes(b"weights of fold %d" % n)
        (fold / "fold.json").write_text(json.dumps({"checkpoint_sha256": file_sha256(fold / "best.pt")}))
    assert member_checkpoint(tmp_path, {"model": "demo", "fold": 0}) == fold0 / "best.pt"
    (fold0 / "best.pt").write_bytes((fold1 / "best.pt").read_bytes())
    with pytest.raises(InputError, match=r"fold0/best.pt: not the checkpoint .*fold0/fold.json recorded"):
        member_checkpoint(tmp_path, {"model": "demo", "fold": 0})


def test_exporting_over_the_log_is_one_line_and_keeps_it(tmp_path: Path, capsys) -> None:
    repo = make_repo(tmp_path / "repo")
    log = repo / "models/catalogue/log.csv"
    log.parent.mkdir(parents=True)
    log.write_text("time,reviewer,action\n")
    status, err = _run_cli(["catalogue", "export", str(log), "--repo", str(repo)], capsys)
    assert status == 2 and err.startswith(f"error: {log}: inside") and log.read_text() == "time,reviewer,action\n"
