"""The train_embedder stage on tiny crops: outputs, MLflow parent + fold runs, skip on re-run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.pipelines.conftest import stage_command

pytestmark = pytest.mark.train  # trains a model: not part of `make test-fast`

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_workspace(root: Path, make_crops, tiny: dict) -> None:
    crops = make_crops(root / "src", n_individuals=8, photos_each=5, seed=3)
    crops["fold"] = np.arange(len(crops)) % 2
    test = crops.iloc[:6]
    for split, frame in (("train", crops), ("test", test)):
        for region in ("fullbody", "backfin"):
            for image, src in zip(frame["image"], frame[f"path_{region}"]):
                dst = root / "data/crops" / region / split / image
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(Path(src).read_bytes())
    (root / "data/prepared").mkdir(parents=True)
    prepared = crops.rename(columns={"label": "individual_id"})[["image", "species", "individual_id", "fold"]]
    prepared.to_csv(root / "data/prepared/train.csv", index=False)
    test[["image", "species"]].to_csv(root / "data/prepared/test.csv", index=False)
    params = {
        "embedder": {
            "models": ["demo"],
            "folds": [0, 1],
            "common": {**tiny, "epochs": 3, "val_every_epochs": 2},
            "zoo": {"demo": {}},
        },
        "tracking": {"experiment": "test-embedder"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def artifact_files(client, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, as paths relative to its artifact root."""
    found = set()
    for info in client.list_artifacts(run_id, path):
        found |= artifact_files(client, run_id, info.path) if info.is_dir else {info.path}
    return found


def run_stage(root: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db", "PYTHONPATH": str(REPO_ROOT)}
    cmd = stage_command("train_embedder", root, {"model": "demo"})
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_stage_writes_outputs_and_one_parent_with_a_child_per_fold(tmp_path, crop_maker, tiny_params):
    import mlflow

    write_workspace(tmp_path, crop_maker, tiny_params)
    run_stage(tmp_path)
    metrics = json.loads((tmp_path / "models/embedder/demo/runs.json").read_text())
    assert set(metrics["folds"]) == {"0", "1"}
    folds_cv = [f["cv_map5"] for f in metrics["folds"].values()]
    assert metrics["cv_map5"] == np.mean(folds_cv)
    # the DVC metrics file holds the numbers only, rounded: mean, std and each fold
    dvc_metrics = json.loads((tmp_path / "metrics/embedder/demo.json").read_text())
    want = {"cv_map5": np.mean(folds_cv), "cv_map5_std": np.std(folds_cv), "cv_map5_fold0": folds_cv[0],
            "cv_map5_fold1": folds_cv[1]}  # fmt: skip
    assert dvc_metrics == {key: round(float(v), 4) for key, v in want.items()}

    oof = np.load(tmp_path / "embeddings/demo/oof.npz", allow_pickle=False)
    assert len(oof["image"]) == 40 and oof["image"].dtype.kind == "U"
    np.testing.assert_allclose(np.linalg.norm(oof["emb"], axis=1), 1.0, atol=1e-5)
    for k in (0, 1):
        test = np.load(tmp_path / f"embeddings/demo/fold{k}/test.npz", allow_pickle=False)
        assert test["emb"].shape == (6, tiny_params["embedding_dim"])
        assert (tmp_path / f"models/embedder/demo/fold{k}/best.pt").is_file()
    curves = pd.read_csv(tmp_path / "metrics/embedder/demo_curves.csv")
    # validated epochs only (epochs 0 and 2 of 0..2 with val_every_epochs 2), one series per fold, nothing blank
    assert list(curves.columns) == ["model", "fold", "epoch", "val_map5", "train_loss", "lr"]
    assert curves.groupby("fold")["epoch"].apply(list).to_dict() == {0: [0, 2], 1: [0, 2]}
    assert curves.notna().all().all()

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("test-embedder").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == metrics["parent_run_id"]]
    assert len(parents) == 1 and parents[0].info.run_name == "embedder/demo" and len(children) == 2
    parent = parents[0]
    # one row compares models: the fold summary, as the metrics file has it (a std under 0.001 keeps 4 significant
    # digits in MLflow, so the two agree to the 4th decimal), and the key params
    assert {key: parent.data.metrics[key] for key in want} == pytest.approx(dvc_metrics, abs=5e-5)
    assert parent.data.params["backbone"] == tiny_params["backbone"] and parent.data.params["folds"] == "0,1"
    assert {"curves/folds.csv", "curves/folds.png"} <= artifact_files(client, parent.info.run_id)
    for child in children:
        fold = child.data.tags["fold"]
        assert child.info.run_id == metrics["folds"][fold]["run_id"] and child.info.run_name == f"fold{fold}"
        assert child.data.metrics["cv_map5"] == round(metrics["folds"][fold]["cv_map5"], 4)
        assert {"val_map5", "train_loss", "lr", "git_sha"} <= set(child.data.metrics) | set(child.data.tags)
        # only measured epochs carry validation numbers
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_map5")] == [0, 2]
        assert len(client.get_metric_history(child.info.run_id, "train_loss")) == 3
        inputs = {d.dataset.name: d.tags[0].value for d in child.inputs.dataset_inputs}
        assert inputs == {f"fold{fold}-training": "training", f"fold{fold}-validation": "validation"}
        files = artifact_files(client, child.info.run_id)
        assert {f"curves/fold{fold}.csv", f"curves/fold{fold}.png", "checkpoint.json"} <= files
        digest = hashlib.sha256((tmp_path / f"models/embedder/demo/fold{fold}/best.pt").read_bytes()).hexdigest()
        assert child.data.tags["checkpoint_sha256"] == digest == metrics["folds"][fold]["checkpoint_sha256"]

    run_stage(tmp_path)  # finished folds are skipped: still one parent and two children
    assert len(client.search_runs([parents[0].info.experiment_id])) == 3
