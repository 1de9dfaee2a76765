"""The small readouts a person sees: the report's charts, the end-of-demo summary, the CLI's version and help."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd

from pipelines.summary import summary_lines
from whale_reid.identify.model_bundle import model_description
from whale_reid.review.report_page import _curve_svg, _fold_curves_svg, _short, _ticks


def _tick_labels(svg: str) -> list[float]:
    return [float(t) for t in re.findall(r"text-anchor='end'>([-0-9.e]+)</text>", svg)]


def test_threshold_curve_has_ticks_on_a_zoomed_range():
    curve = pd.DataFrame({"threshold": [0.0, 0.25, 0.5, 0.75, 1.0], "map5": [0.81, 0.84, 0.86, 0.85, 0.80]})
    svg = _curve_svg(curve, best_threshold=0.5)
    y_ticks = _tick_labels(svg)
    assert len(y_ticks) >= 3 and min(y_ticks) >= 0.78 and max(y_ticks) <= 0.88  # not an axis from 0
    x_ticks = [float(t) for t in re.findall(r"text-anchor='middle'>([-0-9.e]+)</text>", svg)]
    assert x_ticks[0] == 0.0 and x_ticks[-1] == 1.0 and len(x_ticks) >= 3
    assert "stroke-dasharray='4'" in svg  # the chosen threshold is marked
    assert _ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] and _ticks(0.8, 0.86) == [0.8, 0.82, 0.84, 0.86]


def test_fold_curves_draw_one_line_per_fold():
    curves = pd.DataFrame({"fold": [0, 0, 1, 1], "epoch": [1, 3, 1, 3], "val_map5": [0.3, 0.5, 0.35, 0.55]})
    svg = _fold_curves_svg(curves)
    assert svg.count("<polyline") == 2 and "<title>fold 0</title>" in svg and "<title>fold 1</title>" in svg


def test_demo_summary_names_the_scores_the_report_and_where_to_look(tmp_path):
    (tmp_path / "metrics/embedder").mkdir(parents=True)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/index.html").write_text("<html></html>")
    final = {"test_map5": 0.71234, "test_map5_known": 0.8, "test_map5_new": 0.5, "oof_map5": 0.69}
    (tmp_path / "metrics/final.json").write_text(json.dumps(final))
    (tmp_path / "metrics/embedder/demo.json").write_text(json.dumps({"cv_map5": 0.6, "cv_map5_std": 0.02}))
    text = "\n".join(summary_lines(tmp_path, {"embedder": {"models": ["demo"]}}))
    assert "test MAP@5   0.7123  (known 0.8000, new 0.5000)" in text and "CV MAP@5     0.6000 ± 0.0200" in text
    assert (tmp_path / "reports/index.html").resolve().as_uri() in text
    assert all(cmd in text for cmd in ("make mlflow", "dvc exp show", "dvc plots show"))
    identify, enroll = "identify data/demo/test_images --out survey-demo", "enroll decisions.csv --identify-dir"
    assert f"whale-reid {identify}" in text and "survey-demo/review.html" in text and f"whale-reid {enroll}" in text
    assert "CV: each fold's model scored on the photos it did not train on" in text and "OOF: " in text
    assert '`dvc push`" line above needs a remote' in text  # DVC's unconditional line, answered
    assert len(text.splitlines()) <= 21


def test_version_and_identify_help_say_what_to_expect():
    run = [sys.executable, "-c", "from whale_reid.cli import main; main()"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert version.returncode == 0 and re.fullmatch(r"whale-reid \d+\.\d+\S*\n", version.stdout)
    helped = subprocess.run([*run, "identify", "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert helped.returncode == 0
    for part in ("example:", "whale-reid identify survey/", "matches.csv", "review.html", "exit status: 0 done"):
        assert part in helped.stdout


def test_the_registered_model_description_names_inputs_outputs_and_the_scores():
    members = pd.DataFrame({"model": ["demo", "demo"], "fold": [0, 2], "cv_map5": [0.34125, 0.3012]})
    text = model_description(members, {"oof_map5": 0.41234, "test_map5": 0.756}, 0.4, "probability")
    assert "`photo`" in text and "`individual_id`" in text and "`new_individual`" in text
    assert "demo/fold0 0.3412, demo/fold2 0.3012" in text and "OOF MAP@5** 0.4123" in text
    assert "P(same) is below the threshold 0.40" in text and "test MAP@5** 0.7560" in text


def test_report_cells_show_no_raw_none_or_empty_mapping():
    assert _short(None) == "—" and _short({}) == "—" and _short([]) == "—"
    assert _short({"dolphin": 0.05, "beluga": -0.1}) == "dolphin 0.05, beluga -0.1"
    assert _short({"a": None, "b": [0.123456, 2]}) == "a —, b 0.1235, 2" and _short(0.123456) == "0.1235"
