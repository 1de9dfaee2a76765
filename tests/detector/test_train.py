"""A real (tiny) training and prediction, run in a clean subprocess that records every network attempt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.detector.synth import make_photos

pytestmark = pytest.mark.train  # trains a model: not part of `make test-fast`

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs in the child: an audit hook records internet connections and DNS look-ups before anything is imported.
CHILD = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []
    def hook(event, args):
        if event == "socket.getaddrinfo" or (event == "socket.connect" and isinstance(args[1], tuple)):
            attempts.append(f"{event} {args[:2]!r}")
    sys.addaudithook(hook)
    socket.getaddrinfo("localhost", 80)  # proves the hook records look-ups
    hook_works = attempts == ["socket.getaddrinfo ('localhost', 80)"]
    attempts.clear()

    from pathlib import Path
    import pandas as pd
    from whale_detector import CropConfig, DetectorConfig, crop_regions, detect_boxes, train_detector

    base = Path(sys.argv[1])
    boxes = pd.read_csv(base / "boxes.csv")
    epochs = []
    cfg = DetectorConfig(imgsz=64, epochs=2, batch=8, workers=0, cache=False, val_fraction=0.25, val_each_epoch=False)
    result = train_detector(cfg, boxes, base / "img", base / "work", on_epoch_end=lambda m, s: epochs.append((s, m)))
    paths = sorted((base / "img").glob("*.jpg"))
    found = detect_boxes(result.weights, paths, CropConfig(conf_threshold=0.0, batch=4))
    images = pd.DataFrame({"image": [p.name for p in paths], "split": "test", "path": paths})
    crops = crop_regions(images, found, base / "work" / "crops", CropConfig(conf_threshold=0.0))
    out = {
        "weights": str(result.weights), "args": str(result.args_yaml), "metrics": result.metrics(),
        "history": result.history, "epochs": epochs, "attempts": attempts, "hook_works": hook_works,
        "found": found.to_dict("list"), "sources": crops["source"].tolist(),
    }
    (base / "result.json").write_text(json.dumps(out))
    """
)


def test_one_epoch_training_and_prediction_offline_without_side_effects(tmp_path):
    make_photos(tmp_path / "img", 16, size=(96, 72)).to_csv(tmp_path / "boxes.csv", index=False)
    cwd, home, config_dir = tmp_path / "cwd", tmp_path / "home", tmp_path / "yolo-config"
    cwd.mkdir()
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "YOLO_CONFIG_DIR": str(config_dir),
        "PYTHONPATH": str(REPO_ROOT),
        "MLFLOW_TRACKING_URI": "",
    }
    env.pop("MLFLOW_TRACKING_URI")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "result.json").read_text())

    assert out["hook_works"] and out["attempts"] == []
    assert Path(out["weights"]).is_file() and Path(out["weights"]).is_relative_to(tmp_path / "work")
    assert Path(out["args"]).is_file()
    assert set(out["metrics"]) == {
        "map50",
        "map50_95",
        "fullbody_map50",
        "fullbody_map50_95",
        "backfin_map50",
        "backfin_map50_95",
    }
    assert all(v is None or 0.0 <= v <= 1.0 for v in out["metrics"].values())
    assert [step for step, _ in out["epochs"]] == [1, 2] and len(out["history"]) == 2
    # validated after the last epoch only: the first carries its losses and no val numbers (not zeros)
    assert {"train_box_loss", "train_cls_loss"} <= set(out["history"][0])
    assert not any(key.startswith("val_") for key in out["history"][0])
    assert {"train_box_loss", "train_cls_loss", "val_map50", "val_map50_95"} <= set(out["history"][1])
    # side effects: nothing in the working dir or home; the fonts are local copies, not downloads
    assert list(cwd.iterdir()) == [] and list(home.iterdir()) == []
    assert sorted(p.name for p in (config_dir / "Ultralytics").iterdir()) == [
        "Arial.Unicode.ttf",
        "Arial.ttf",
        "settings.json",
    ]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    found = out["found"]
    assert set(found["region"]) <= {"fullbody", "backfin"} and all(0 <= x <= 96 for x in found["x1"] + found["x2"])
    assert len(out["sources"]) == 32
