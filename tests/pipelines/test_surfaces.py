"""What a person reads after the tiny pipeline: dvc plots offline, the MLflow store, dvc exp show, the study.

All on the session's `tiny_pipeline` run (see tests/conftest.py); nothing here re-runs a stage.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
import yaml

from tests.cli.conftest import CHROMIUM_FLAGS, chromium
from tests.conftest import run_in

pytestmark = pytest.mark.slow
OFFLINE = ("--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>")  # any network request fails at once


def _params(repo: Path) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text())


def _client(repo: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db", registry_uri=f"sqlite:///{repo}/mlflow.db")


def _runs(repo: Path) -> list:
    client = _client(repo)
    experiment = client.get_experiment_by_name(_params(repo)["tracking"]["experiment"])
    return client.search_runs([experiment.experiment_id], max_results=1000)


def _artifacts(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for info in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, info.path) if info.is_dir else {info.path}
    return found


def test_dvc_plots_page_draws_a_line_per_fold_offline(tiny_pipeline, tmp_path):
    params = _params(tiny_pipeline)
    folds = params["embedder"]["folds"]
    curves = pd.read_csv(tiny_pipeline / "metrics/embedder/demo_curves.csv")
    # 3 epochs, validation every 2nd counted back from the last: epochs 0 and 2; epoch 1 is left out, not 0
    assert curves.groupby("fold")["epoch"].apply(list).to_dict() == {k: [0, 2] for k in folds}
    assert curves["val_map5"].notna().all()

    proc = run_in(tiny_pipeline, "dvc", "plots", "show", "-o", str(tmp_path / "plots"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = tmp_path / "plots" / "index.html"
    html = page.read_text()
    assert not re.search(r"<script[^>]+src=", html) and "cdn.jsdelivr" not in html  # vega is inlined
    dom = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, *OFFLINE, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=15000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    line_mark = r'<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="line mark" d="([^"]*)"'
    lines = re.findall(line_mark, dom)
    drawn = {label: d for label, d in lines if d.count("L") >= 1}  # a line through at least two points
    for k in folds:
        assert any(f"fold: {k};" in label for label in drawn), f"no curve drawn for fold {k}: {lines}"
    assert any("threshold:" in label for label in drawn), "the threshold curve is not drawn"
    assert 'aria-roledescription="rule mark"' in dom  # the tuned threshold, marked on its curve


def test_mlflow_store_has_the_fold_summary_artifacts_and_outputs(tiny_pipeline):
    params, client, runs = _params(tiny_pipeline), _client(tiny_pipeline), _runs(tiny_pipeline)
    experiment = client.get_experiment_by_name(params["tracking"]["experiment"])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI's model-training view
    record = json.loads((tiny_pipeline / "models/embedder/demo/runs.json").read_text())
    parent = client.get_run(record["parent_run_id"])
    cvs = [record["folds"][str(k)]["cv_map5"] for k in params["embedder"]["folds"]]
    assert [parent.data.metrics[f"cv_map5_fold{k}"] for k in params["embedder"]["folds"]] == [round(v, 4) for v in cvs]
    assert parent.data.metrics["cv_map5"] == pytest.approx(sum(cvs) / len(cvs), abs=5e-5)  # 4 decimals in MLflow
    assert parent.data.metrics["cv_map5_std"] == pytest.approx(float(pd.Series(cvs).std(ddof=0)), abs=5e-5)
    assert parent.data.params["backbone"] == params["embedder"]["common"]["backbone"]
    for k, entry in record["folds"].items():
        fold = client.get_run(entry["run_id"])
        assert {f"curves/fold{k}.csv", f"curves/fold{k}.png", "checkpoint.json"} <= _artifacts(client, entry["run_id"])
        best = tiny_pipeline / f"models/embedder/demo/fold{k}/best.pt"
        assert fold.data.tags["checkpoint_sha256"] == hashlib.sha256(best.read_bytes()).hexdigest()
        assert [m.step for m in client.get_metric_history(entry["run_id"], "val_map5")] == [0, 2]  # measured only

    by_name = {r.info.run_name: r for r in runs}
    tune = by_name["tune"]
    steps = client.get_metric_history(tune.info.run_id, "trial_map5")
    assert sorted(m.step for m in steps) == list(range(len(steps)))  # the trial number, not threshold x 1000
    assert {"threshold_curve.csv", "threshold_curve.png", "postprocess.json"} <= _artifacts(client, tune.info.run_id)
    ensemble = by_name["ensemble"]
    files = _artifacts(client, ensemble.info.run_id)
    assert {"outputs/submission.csv", "outputs/oof_predictions.csv", "selection.json"} <= files
    logged = client.download_artifacts(ensemble.info.run_id, "outputs/submission.csv")
    assert Path(logged).read_bytes() == (tiny_pipeline / "outputs/submission.csv").read_bytes()
    detector = by_name["detector"]
    epochs = params["detector"]["epochs"]
    assert [m.step for m in client.get_metric_history(detector.info.run_id, "val_map50")] == [epochs]
    assert {"args.yaml", "results.csv", "weights/best.pt"} <= _artifacts(client, detector.info.run_id)


def test_the_registered_ensemble_answers_two_photos_as_predict_did(tiny_pipeline, tmp_path):
    name = _params(tiny_pipeline)["predict"]["registered_model"]
    versions = _client(tiny_pipeline).search_model_versions(f"name = '{name}'")
    assert len(versions) == 1
    described = _client(tiny_pipeline).get_registered_model(name).description
    assert all(part in described for part in ("**Input**", "**Output**", "CV MAP@5", "OOF MAP@5"))
    photos = sorted((tiny_pipeline / "data/demo/test_images").iterdir())[:2]
    pd.DataFrame({"photo": [str(p) for p in photos]}).to_csv(tmp_path / "photos.csv", index=False)
    out = tmp_path / "answers.json"
    model = f"models:/{name}/{versions[0].version}"
    proc = run_in(tiny_pipeline, "mlflow", "models", "predict", "-m", model, "-i", str(tmp_path / "photos.csv"),
                  "-t", "csv", "-o", str(out), "--env-manager", "local")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = pd.DataFrame(json.loads(out.read_text())["predictions"])
    submission = pd.read_csv(tiny_pipeline / "outputs/submission.csv", dtype=str).set_index("image")["predictions"]
    for photo in photos:
        mine = answers[answers["photo"] == str(photo)].sort_values("rank")
        assert mine["individual_id"].tolist() == submission[photo.name].split()  # the one answer path
        named = mine[mine["individual_id"] != "new_individual"]  # the tiny profile verifies: P(same) per answer
        assert len(named) >= 4 and named["probability"].between(0, 1).all()


def test_dvc_exp_show_holds_rounded_numbers_and_fits_on_a_screen(tiny_pipeline):
    proc = run_in(tiny_pipeline, "dvc", "exp", "show", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    workspace = next(e for e in json.loads(proc.stdout) if e["rev"] == "workspace")
    metrics = {f"{path}:{key}": value for path, data in workspace["data"]["metrics"].items()
               for key, value in data["data"].items()}  # fmt: skip
    assert metrics and all(isinstance(v, (int, float)) for v in metrics.values()), metrics  # no run ids, counts
    assert all(round(v, 4) == v for v in metrics.values())
    assert set(metrics) >= {"metrics/final.json:test_map5", "metrics/embedder/demo.json:cv_map5"}

    proc = run_in(tiny_pipeline, "make", "-s", "exp", "EXP_FORMAT=--csv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    header, *rows = list(filter(None, proc.stdout.splitlines()))
    columns = header.split(",")
    assert len(columns) <= 40 and {"test_map5", "cv_map5", "cv_map5_std", "threshold"} <= set(columns), columns
    assert any(c.endswith("oof_map5") for c in columns)  # in tune.json and final.json: DVC prefixes the file
    assert columns.index("test_map5") < columns.index("embedder.common.backbone")  # scores before knobs

    proc = run_in(tiny_pipeline, "make", "-s", "baseline")  # commits dvc.lock + metrics: a real baseline row
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = pd.read_csv(io.StringIO(run_in(tiny_pipeline, "dvc", "exp", "show", "--csv").stdout))
    final = json.loads((tiny_pipeline / "metrics/final.json").read_text())
    baseline = table[table["typ"] == "baseline"].set_index("rev")
    assert (baseline.drop(index="workspace")["test_map5"].astype(float) == final["test_map5"]).all()


def test_the_study_is_named_described_and_sampled_for_its_space(tiny_pipeline):
    params = _params(tiny_pipeline)
    summaries = optuna.get_all_study_summaries(f"sqlite:///{tiny_pipeline}/optuna.db")  # tune's, and each round's
    tune_runs = [r for r in _runs(tiny_pipeline) if r.info.run_name == "tune"]
    (tune_run,) = [r for r in tune_runs if "mlflow.parentRunId" not in r.data.tags]  # rounds' tune runs are children
    assert len(summaries) == len(tune_runs) == 2  # the tiny profile runs one pseudo-label round
    (summary,) = [s for s in summaries if s.user_attrs["mlflow_run_id"] == tune_run.info.run_id]
    study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{tiny_pipeline}/optuna.db")
    assert study.metric_names == ["oof_map5"]
    members = json.loads((tiny_pipeline / "outputs/selection.json").read_text())["members"]
    assert study.user_attrs["members"] == [f"{m['model']}/fold{m['fold']}" for m in members]
    search = params["tune"]["search"]
    tried = [t.params["threshold"] for t in study.trials]
    if params["tune"].get("head_blend"):  # the space has grown (threshold × blend weight): TPE, n_trials of it
        assert len(tried) == search["n_trials"] and all("blend_weight" in t.params for t in study.trials)
        return
    n_grid = round((search.get("threshold_max", 1.0) - search.get("threshold_min", 0.0)) / search["threshold_step"]) + 1
    assert len(tried) == len(set(tried)) == n_grid  # a 1-D grid: each threshold exactly once


def test_the_report_links_the_runs_and_draws_the_fold_curves(tiny_pipeline):
    html = (tiny_pipeline / "reports/index.html").read_text()
    record = json.loads((tiny_pipeline / "models/embedder/demo/runs.json").read_text())
    assert f"/runs/{record['parent_run_id']}'" in html and "workflowType=machine_learning" in html
    assert all(f"/runs/{entry['run_id']}'" in html for entry in record["folds"].values())
    assert "aria-label='validation MAP@5 vs epoch'" in html and "aria-label='OOF MAP@5 vs threshold'" in html
    text = re.sub(r"<svg.*?</svg>|data:image[^']*", "", html)
    assert not re.search(r"\d\.0*[1-9]\d{5,}", text)  # 4 significant digits: no 6-digit float (0.0005043 is fine)
