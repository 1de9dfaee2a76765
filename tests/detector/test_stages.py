"""The train_detector and crop stage scripts, run as DVC runs them, on drawn photos in a temporary repo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import error_lines
from tests.detector.synth import make_photos
from tests.pipelines.conftest import stage_command
from whale_core import InputError
from whale_detector.train import resolve_model

REPO_ROOT = Path(__file__).resolve().parents[2]


def _stage(name: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    return subprocess.run(stage_command(name, cwd), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _given(path: str) -> dict:
    """The crop params of given boxes: no detector stage in the DVC graph, crop depends on the file."""
    return {"box_source": "boxes_csv", "boxes_csv": path, "detector_stages": [], "box_input": path}


def _layout(root: Path, params: dict) -> None:
    """Kaggle-like raw folder (train 12 / test 4 drawn photos, true boxes for all) + prepared CSVs + params."""
    raw = root / "data" / "raw"
    train = make_photos(raw / "train_images", 12, seed=1, size=(96, 72))
    test = make_photos(raw / "test_images", 4, seed=2, size=(96, 72)).assign(image=lambda b: "t" + b["image"])
    for old in sorted((raw / "test_images").iterdir()):
        old.rename(old.with_name("t" + old.name))
    pd.concat([train, test]).to_csv(raw / "boxes.csv", index=False)
    (root / "data" / "prepared").mkdir(parents=True)
    train_names, test_names = train["image"].unique(), test["image"].unique()
    species = ["beluga" if i % 2 else "orca" for i in range(len(train_names))]
    pd.DataFrame({"image": train_names, "species": species}).to_csv(root / "data/prepared/train.csv", index=False)
    pd.DataFrame({"image": test_names}).to_csv(root / "data/prepared/test.csv", index=False)
    test_species = ["beluga"] * (len(test_names) - 1) + ["orca"]  # the demo's hidden truth has species too
    pd.DataFrame({"image": test_names, "species": test_species}).to_csv(raw / "test_labels.csv", index=False)
    (root / "params.yaml").write_text(yaml.safe_dump({"data": {"raw_dir": "data/raw"}, **params}))


def test_crop_stage_with_given_boxes_scores_perfect_iou(tmp_path):
    _layout(tmp_path, {"crop": {**_given("data/raw/boxes.csv"), "margin_frac": 0.1}})
    proc = _stage("crop", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics/crop.json").read_text())
    assert metrics["fallback_share"] == 0.0 and metrics["n_photos"] == 16
    assert metrics["iou_fullbody"] == metrics["iou_backfin"] == 1.0 and metrics["n_iou_backfin"] == 4
    by_species = metrics["by_species"]  # species from train.csv and test_labels.csv; IoU on the test photos
    assert sorted(by_species) == ["beluga", "orca"]
    assert by_species["beluga"]["n_iou_backfin"] == 3 and by_species["orca"]["n_iou_backfin"] == 1
    assert by_species["beluga"]["iou_backfin"] == 1.0 and by_species["orca"]["fallback_share_backfin"] == 0.0
    table = pd.read_csv(tmp_path / "data/crops/boxes.csv")
    assert len(table) == 32 and set(table["split"]) == {"train", "test"}
    assert all((tmp_path / "data/crops" / rel).is_file() for rel in table["crop"])


def test_a_bad_test_photo_box_fails_before_any_crop_is_written(tmp_path):
    _layout(tmp_path, {"crop": _given("data/raw/given.csv")})
    boxes = pd.read_csv(tmp_path / "data/raw/boxes.csv")
    line = len(boxes) + 1  # the last data row (the header is line 1): a test photo's backfin
    boxes.loc[len(boxes) - 1, ["x1", "x2"]] = [50, 20]  # inverted
    boxes.to_csv(tmp_path / "data/raw/given.csv", index=False)
    earlier = tmp_path / "data/crops/boxes.csv"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("an earlier run's table\n")
    proc = _stage("crop", tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        f"error: data/raw/given.csv: line {line}: box 50,{boxes['y1'].iloc[-1]:g},20,{boxes['y2'].iloc[-1]:g} "
        f"(image {boxes['image'].iloc[-1]!r} of a 96x72 photo): x2 <= x1 (expected x1,y1 top-left and x2,y2 "
        "bottom-right in pixels)"
    ]
    assert earlier.read_text() == "an earlier run's table\n" and sorted(earlier.parent.iterdir()) == [earlier]
    assert not (tmp_path / "metrics/crop.json").exists()


def test_stage_reports_a_bad_params_key_in_one_line(tmp_path):
    _layout(tmp_path, {"crop": {"box_sorce": "detector"}})
    proc = _stage("crop", tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        "error: unknown key 'box_sorce' in params section 'crop' (known keys: batch, box_input, box_source, boxes_csv, "
        "conf_threshold, detector_stages, device, imgsz, iou_nms, jpeg_quality, margin_frac, max_side_px, min_box_px, "
        "workers)"
    ]


@pytest.mark.slow  # ~30 s on 2 idle cores, over a minute when they are shared
def test_train_then_crop_with_the_detector(tmp_path):
    detector = {"model": "yolo11-pico.yaml", "imgsz": 64, "epochs": 2, "batch": 8, "workers": 0, "cache": False}
    _layout(tmp_path, {"detector": detector, "crop": {"conf_threshold": 0.25}})
    proc = _stage("train_detector", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "models/detector/best.pt").is_file() and (tmp_path / "models/detector/args.yaml").is_file()
    metrics = json.loads((tmp_path / "metrics/detector.json").read_text())
    # numbers only: the run id and the counts are in models/detector/run.json
    assert set(metrics) == {"map50", "map50_95", "fullbody_map50", "fullbody_map50_95", "backfin_map50",
                            "backfin_map50_95"}  # fmt: skip
    record = json.loads((tmp_path / "models/detector/run.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = mlflow.get_run(record["mlflow_run_id"])
    assert run.info.run_name == "detector" and run.data.tags["stage"] == "train_detector"
    assert run.data.metrics["map50"] == pytest.approx(metrics["map50"], abs=5e-5)
    assert run.data.params["model"] == "yolo11-pico.yaml"
    steps = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_box_loss")
    assert sorted(m.step for m in steps) == [1, 2]
    # the stage's own artifacts only (ultralytics' MLflow callback is off); val mAP only where it was measured
    assert sorted(p.name for p in (tmp_path / "mlruns").rglob("*") if p.is_file()) == [
        "args.yaml", "best.pt", "results.csv"]  # fmt: skip
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_map50")] == [2]

    proc = _stage("crop", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    crop = json.loads((tmp_path / "metrics/crop.json").read_text())
    assert crop["box_source"] == "detector" and 0.0 <= crop["fallback_share"] <= 1.0
    assert len(pd.read_csv(tmp_path / "data/crops/boxes.csv")) == 32


def test_weights_names_that_would_download_are_refused():
    with pytest.raises(InputError, match="'yolo11n.pt' not found"):
        resolve_model("yolo11n.pt")
    assert resolve_model("yolo11n.yaml") == "yolo11n.yaml"
    assert Path(resolve_model("yolo11-pico.yaml")).is_file()
