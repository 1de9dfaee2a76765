"""Tracking outages: an unreachable MLflow server stops a stage within seconds, before any work,
naming the URI; with `tracking.local_fallback: true` the stage goes on with the local SQLite store."""

from __future__ import annotations

import json
import time

import pytest

from tests.reliability.conftest import edit_params, run_module

DEAD_URI = "http://127.0.0.1:9"  # loopback "discard" port: nothing listens, the connect is refused at once
OUTPUT_OF = {
    "select": "outputs/selection.json",
    "tune": "outputs/postprocess.json",
    "predict": "outputs/submission.csv",
    "train_detector": "metrics/detector.json",
}


@pytest.mark.parametrize("stage", sorted(OUTPUT_OF))
def test_unreachable_server_fails_fast_naming_the_uri(pipeline_copy, stage):
    output = pipeline_copy / OUTPUT_OF[stage]
    before = output.read_bytes()
    started = time.monotonic()
    proc = run_module(pipeline_copy, stage, MLFLOW_TRACKING_URI=DEAD_URI)
    elapsed_s = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert DEAD_URI in last and "unreachable" in last and "Traceback" not in proc.stderr
    assert elapsed_s < 20
    assert output.read_bytes() == before


def test_local_fallback_goes_on_and_says_where(pipeline_copy):
    edit_params(pipeline_copy, tracking={"local_fallback": True})
    before = json.loads((pipeline_copy / "outputs/selection.json").read_text())
    (pipeline_copy / "outputs/selection.json").unlink()
    proc = run_module(pipeline_copy, "select", MLFLOW_TRACKING_URI=DEAD_URI)
    assert proc.returncode == 0, proc.stderr[-2000:]
    local = pipeline_copy / "mlflow.db"
    assert f"{DEAD_URI} is unreachable; logging to the local store sqlite:///mlflow.db ({local})" in proc.stderr
    after = json.loads((pipeline_copy / "outputs/selection.json").read_text())
    assert after["source"] == "mlflow" and after["members"] == before["members"]
