"""The train_embedder stage on tiny crops: outputs, MLflow parent + fold runs, skip on re-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

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
        "embedder": {"models": ["demo"], "folds": [0, 1], "common": {**tiny, "epochs": 1}, "zoo": {"demo": {}}},
        "tracking": {"experiment": "test-embedder"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def run_stage(root: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db", "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "pipelines.train_embedder", "--model", "demo"]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_stage_writes_outputs_and_one_parent_with_a_child_per_fold(tmp_path, crop_maker, tiny_params):
    import mlflow

    write_workspace(tmp_path, crop_maker, tiny_params)
    run_stage(tmp_path)
    metrics = json.loads((tmp_path / "metrics/embedder/demo.json").read_text())
    assert set(metrics["folds"]) == {"0", "1"}
    assert metrics["cv_map5"] == np.mean([f["cv_map5"] for f in metrics["folds"].values()])

    oof = np.load(tmp_path / "embeddings/demo/oof.npz", allow_pickle=False)
    assert len(oof["image"]) == 40 and oof["image"].dtype.kind == "U"
    np.testing.assert_allclose(np.linalg.norm(oof["emb"], axis=1), 1.0, atol=1e-5)
    for k in (0, 1):
        test = np.load(tmp_path / f"embeddings/demo/fold{k}/test.npz", allow_pickle=False)
        assert test["emb"].shape == (6, tiny_params["embedding_dim"])
        assert (tmp_path / f"models/embedder/demo/fold{k}/best.pt").is_file()
    curves = pd.read_csv(tmp_path / "metrics/embedder/demo_curves.csv")
    assert list(curves.columns) == ["model", "fold", "epoch", "train_loss", "lr", "val_map5"] and len(curves) == 2

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("test-embedder").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == metrics["parent_run_id"]]
    assert len(parents) == 1 and parents[0].info.run_name == "embedder/demo" and len(children) == 2
    assert parents[0].data.metrics["cv_map5"] == metrics["cv_map5"]
    for child in children:
        fold = child.data.tags["fold"]
        assert child.info.run_id == metrics["folds"][fold]["run_id"] and child.info.run_name == f"fold{fold}"
        assert child.data.metrics["cv_map5"] == metrics["folds"][fold]["cv_map5"]
        assert {"val_map5", "train_loss", "lr", "git_sha"} <= set(child.data.metrics) | set(child.data.tags)

    run_stage(tmp_path)  # finished folds are skipped: still one parent and two children
    assert len(client.search_runs([parents[0].info.experiment_id])) == 3
