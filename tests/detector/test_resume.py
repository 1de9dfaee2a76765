"""An interrupted detector run continues from its last checkpoint instead of starting over."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.detector.synth import make_photos
from whale_detector import DetectorConfig, train_detector

pytestmark = pytest.mark.train  # trains a model: not part of `make test-fast`


class Interrupted(Exception):
    """Stands in for a crash or a kill at the end of an epoch (after ultralytics saved last.pt)."""


@pytest.mark.slow
def test_interrupted_run_resumes_then_a_finished_run_starts_afresh(tmp_path):
    boxes = make_photos(tmp_path / "img", 12, size=(96, 72))
    cfg = DetectorConfig(imgsz=64, epochs=2, batch=8, workers=0, cache=False, val_fraction=0.25, close_mosaic=0)
    steps: list[int] = []

    def crash_after_first_epoch(metrics: dict, step: int) -> None:
        steps.append(step)
        if step == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_detector(cfg, boxes, tmp_path / "img", tmp_path / "work", on_epoch_end=crash_after_first_epoch)
    state = tmp_path / "work/runs/train/whale_state.json"
    assert json.loads(state.read_text())["finished"] is False

    result = train_detector(cfg, boxes, tmp_path / "img", tmp_path / "work", on_epoch_end=lambda m, s: steps.append(s))
    assert steps == [1, 2]  # epoch 1 was not trained again
    assert result.weights.is_file() and json.loads(state.read_text())["finished"] is True
    assert len(pd.read_csv(tmp_path / "work/runs/train/results.csv")) == 2

    changed = DetectorConfig(**{**cfg.to_dict(), "epochs": 1})
    steps.clear()
    train_detector(changed, boxes, tmp_path / "img", tmp_path / "work", on_epoch_end=lambda m, s: steps.append(s))
    assert steps == [1]
