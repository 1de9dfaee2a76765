"""The `demo_data` stage run as DVC runs it: a subprocess in a folder with its own params.yaml."""

from __future__ import annotations

import json

import pandas as pd

from tests.pipelines.conftest import run_stage, write_params

TINY_PARAMS = {"raw_dir": "elsewhere", "demo": {"n_species": 3, "n_individuals": 10, "image_size": [128, 160]}}


def test_stage_writes_layout_and_metrics_and_reruns_cleanly(tmp_path):
    """The demo always goes to data/demo: a `data.raw_dir` pointing at real data is never touched."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/train.csv").write_text("real data\n")
    write_params(tmp_path, {"data": TINY_PARAMS})
    first = run_stage("demo_data", tmp_path)
    assert first.returncode == 0, first.stderr
    train_csv = (tmp_path / "data/demo/train.csv").read_bytes()
    (tmp_path / "data/demo/train_images/stale.jpg").write_bytes(b"left over")
    second = run_stage("demo_data", tmp_path)
    assert second.returncode == 0, second.stderr
    assert not (tmp_path / "data/demo/train_images/stale.jpg").exists()
    assert (tmp_path / "data/demo/train.csv").read_bytes() == train_csv
    metrics = json.loads((tmp_path / "metrics/demo_data.json").read_text())
    train = pd.read_csv(tmp_path / "data/demo/train.csv")
    truth = pd.read_csv(tmp_path / "data/demo/test_labels.csv")
    assert metrics["photos"] == len(train) + len(truth)
    assert metrics["individuals"] == 10 and metrics["species"] == 3
    assert (tmp_path / "elsewhere/train.csv").read_text() == "real data\n"
    assert metrics["test_new_share"] == round((truth["individual_id"] == "new_individual").mean(), 4)


def test_stage_names_an_unknown_params_key(tmp_path):
    write_params(tmp_path, {"data": {"raw_dir": "raw", "demo": {"n_individual": 10}}})
    proc = run_stage("demo_data", tmp_path)
    assert proc.returncode == 2
    assert "unknown key 'n_individual' in params section 'data.demo'" in proc.stderr
    assert "Traceback" not in proc.stderr
