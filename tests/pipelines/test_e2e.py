"""The whole pipeline, for real: `dvc repro` on the tiny profile in a temporary git repo (see conftest)."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import run_in
from tests.pipelines.conftest import stage_command
from whale_reid.stages.select import SelectConfig, select_members

pytestmark = pytest.mark.slow


def _map5_oracle(predictions: list[list[str]], truth: list[str]) -> float:
    """Kaggle's MAP@5 written out independently of whale_retrieval."""
    total = 0.0
    for preds, label in zip(predictions, truth):
        for rank, pred in enumerate(preds[:5], start=1):
            if pred == label:
                total += 1.0 / rank
                break
    return total / len(truth)


def test_mlflow_has_one_parent_and_a_child_per_fold(tiny_pipeline):
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tiny_pipeline}/mlflow.db")
    experiment = client.get_experiment_by_name(params["tracking"]["experiment"])
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    for model in params["embedder"]["models"]:
        parents = [r for r in runs if r.info.run_name == f"embedder/{model}"]
        assert len(parents) == 1
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
        assert sorted(r.info.run_name for r in children) == [f"fold{k}" for k in params["embedder"]["folds"]]
        metrics = json.loads((tiny_pipeline / f"models/embedder/{model}/runs.json").read_text())
        for child in children:
            fold = child.info.run_name.removeprefix("fold")
            assert child.data.metrics["cv_map5"] == round(metrics["folds"][fold]["cv_map5"], 4)  # exact in runs.json


def test_selection_follows_the_rule_on_the_runs_mlflow_confirms(tiny_pipeline):
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tiny_pipeline}/mlflow.db")
    selection = json.loads((tiny_pipeline / "outputs/selection.json").read_text())
    rows = []
    for member_model in params["embedder"]["models"]:
        metrics = json.loads((tiny_pipeline / f"models/embedder/{member_model}/runs.json").read_text())
        for fold, entry in metrics["folds"].items():
            run = client.get_run(entry["run_id"])  # MLflow shows the score rounded; the rule ranks the exact one
            assert run.data.metrics["cv_map5"] == round(entry["cv_map5"], 4)
            rows.append({"model": member_model, "fold": int(fold), "run_id": entry["run_id"],
                         "cv_map5": entry["cv_map5"], "checkpoint": ""})  # fmt: skip
    expected = select_members(pd.DataFrame(rows), SelectConfig.from_dict(params["select"]))
    got = pd.DataFrame(selection["members"])
    assert got[["model", "fold", "run_id"]].values.tolist() == expected[["model", "fold", "run_id"]].values.tolist()
    assert len(got) == min(params["select"]["top_n"], len(rows))


def test_submission_is_valid_and_final_metrics_recompute(tiny_pipeline):
    submission = pd.read_csv(tiny_pipeline / "outputs/submission.csv", dtype=str)
    test = pd.read_csv(tiny_pipeline / "data/prepared/test.csv", dtype=str)
    assert list(submission.columns) == ["image", "predictions"]
    assert sorted(submission["image"]) == sorted(test["image"])
    predictions = submission["predictions"].str.split().tolist()
    assert all(len(p) == 5 and len(set(p)) == 5 for p in predictions)
    labels = pd.read_csv(tiny_pipeline / "data/demo/test_labels.csv", dtype=str).set_index("image")["individual_id"]
    final = json.loads((tiny_pipeline / "metrics/final.json").read_text())
    oracle = _map5_oracle(predictions, labels.loc[submission["image"]].tolist())
    assert final["test_map5"] == pytest.approx(oracle, abs=5e-5)  # metrics files are rounded to 4 decimals
    report = (tiny_pipeline / "reports/index.html").read_text()
    oof = pd.read_csv(tiny_pipeline / "outputs/oof_predictions.csv", dtype=str)
    assert report.count("data:image/jpeg;base64,") >= min(12, len(oof))  # every sampled query crop is embedded
    assert (tiny_pipeline / "models/gallery/gallery.npz").is_file()


def test_second_repro_is_a_no_op(tiny_pipeline):
    proc = run_in(tiny_pipeline, "dvc", "status")
    assert proc.returncode == 0 and "up to date" in proc.stdout, proc.stdout
    proc = run_in(tiny_pipeline, "dvc", "repro")
    assert proc.returncode == 0 and "Running stage" not in proc.stdout, proc.stdout


def test_select_refuses_a_run_logged_with_other_params(tiny_pipeline, tmp_path):
    # the run records say the folds were trained with another params digest than their MLflow runs carry
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(tiny_pipeline, repo, ignore=shutil.ignore_patterns("data", "embeddings", "models", ".dvc"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    runs = f"models/embedder/{params['embedder']['models'][0]}/runs.json"  # the run records, not the checkpoints
    (repo / runs).parent.mkdir(parents=True)
    shutil.copyfile(tiny_pipeline / runs, repo / runs)
    metrics_file = repo / runs
    metrics = json.loads(metrics_file.read_text())
    metrics_file.write_text(json.dumps({**metrics, "params_digest": "0123456789ab"}))
    selection_before = (repo / "outputs/selection.json").read_text()
    proc = run_in(repo, *stage_command("select", repo))
    assert proc.returncode == 2, proc.stderr[-2000:]
    first_run = next(iter(metrics["folds"].values()))["run_id"]
    assert f"MLflow run {first_run} was logged with other params" in proc.stderr
    assert (repo / "outputs/selection.json").read_text() == selection_before  # the old selection is kept


def test_the_shortlist_is_verified_and_the_threshold_is_a_probability(tiny_pipeline):
    """The tiny profile turns `match` on: local features cached, a calibrator fitted on OOF pairs, the
    threshold tuned on its probabilities, and the gallery saved with the rule and the features identify needs."""
    from whale_matcher import load_features

    summary = json.loads((tiny_pipeline / "metrics/local_features.json").read_text())
    assert summary["enabled"] is True
    test = pd.read_csv(tiny_pipeline / "data/prepared/test.csv", dtype=str)
    for region in ("fullbody", "backfin"):
        feats = load_features(tiny_pipeline / f"features/{region}/test.npz")
        assert sorted(feats.image.tolist()) == sorted(test["image"]) and feats.can_flip
        assert (tiny_pipeline / f"models/gallery/features_{region}.npz").is_file()
    post = json.loads((tiny_pipeline / "outputs/postprocess.json").read_text())
    assert post["scale"] == "probability" and 0.0 <= post["threshold"] <= 1.0
    evidence = ["similarity", "excess_fullbody", "excess_backfin", "outline_backfin", "traced_backfin"]
    assert post["calibrator"]["features"] == evidence
    assert post["calibrator"]["kind"] == "isotonic"  # the default: one isotonic map per input, averaged
    for name, (_, ky) in zip(evidence, post["calibrator"]["knots"]):
        assert list(ky) == sorted(ky), name  # monotone: more evidence never lowers P(same)
    assert set(post["calibrator"]["references"]) == {"inliers_fullbody", "inliers_backfin"}
    assert 0.0 < summary["backfin_train_outline_traced"] <= 1.0  # the fin outlines were traced
    assert feats.has_outlines
    gallery = json.loads((tiny_pipeline / "models/gallery/gallery.json").read_text())["settings"]
    assert gallery["calibrator"] == post["calibrator"] and gallery["threshold"] == post["threshold"]
    oof = pd.read_csv(tiny_pipeline / "outputs/oof_predictions.csv", dtype=str)
    assert all(len(row.evidence_images.split()) == 5 for row in oof.itertuples())
    assert not any(row.image in row.evidence_images.split() for row in oof.itertuples())  # never the query itself


def test_the_pseudo_label_round_adds_exactly_the_confident_photos_and_none_reaches_oof(tiny_pipeline):
    """The tiny profile runs `pseudo_round@1`: its picks are exactly the confident answers of `predict`, the
    round's models train on them, and none of them is an OOF query or OOF gallery photo of the round's `tune`."""
    import numpy as np

    cfg = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())["pseudo"]
    answers = pd.read_csv(tiny_pipeline / "outputs/test_answers.csv", dtype=str, keep_default_na=False)
    confident = answers[(answers.answer != "new_individual") & (answers.answer == answers.candidate)
                        & (answers.score.astype(float) >= cfg["min_score"])
                        & (answers.margin.astype(float) >= cfg["min_margin"])]  # fmt: skip
    picks = pd.read_csv(tiny_pipeline / "data/pseudo/round1.csv", dtype=str, keep_default_na=False)
    assert 0 < len(picks) < len(answers)
    assert sorted(picks.image) == sorted(confident.image) and (picks.source == "pseudo_round1").all()
    assert picks.set_index("image").individual_id.to_dict() == confident.set_index("image").answer.to_dict()
    pseudo = set(picks.image)
    with np.load(tiny_pipeline / "embeddings_round1/demo/fold0/train.npz") as fold:
        assert pseudo <= set(fold["image"].tolist())  # the round's folds trained on and embedded them
    with np.load(tiny_pipeline / "embeddings_round1/demo/oof.npz") as oof_emb:
        assert not pseudo & set(oof_emb["image"].tolist())
    oof = pd.read_csv(tiny_pipeline / "outputs/round1/oof_predictions.csv", dtype=str, keep_default_na=False)
    train = pd.read_csv(tiny_pipeline / "data/prepared/train.csv", dtype=str, keep_default_na=False)
    assert set(oof.image) <= set(train.image)  # the OOF queries are train photos (of the selected folds), no more
    assert not pseudo & {image for row in oof.evidence_images for image in row.split()}
    scores = json.loads((tiny_pipeline / "metrics/pseudo_round1.json").read_text())
    assert scores["round_n_pseudo"] == len(picks)
    assert {"round_test_map5", "round_test_new_share", "round_cv_map5_demo"} <= set(scores)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tiny_pipeline}/mlflow.db")
    experiment = client.get_experiment_by_name("whale-reid")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.info.run_name == "pseudo/round1")
    child = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
                 and r.info.run_name == "round1")  # fmt: skip
    assert child.data.metrics["test_map5"] == pytest.approx(scores["round_test_map5"], abs=1e-4)


def test_the_head_blend_is_tuned_and_saved_with_the_rule(tiny_pipeline):
    post = json.loads((tiny_pipeline / "outputs/postprocess.json").read_text())
    gallery = json.loads((tiny_pipeline / "models/gallery/gallery.json").read_text())["settings"]
    assert 0.0 <= post["blend_weight"] <= 1.0 and gallery["blend_weight"] == post["blend_weight"]
