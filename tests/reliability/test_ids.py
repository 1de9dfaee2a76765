"""Ids are strings in every reader (`NA`, `null`, `n/a`, `None`, `nan` are individuals' names), and
`train_embedder` checks its inputs before it removes a fold's stale checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from tests.pipelines.conftest import make_kaggle_layout, run_stage, write_params
from whale_core import read_table
from whale_embedder import save_embeddings
from whale_reid.answers.ensemble import stack_oof
from whale_reid.answers.verification import MatchConfig
from whale_reid.dataset.crops import crop_table
from whale_reid.stages.predict import PredictConfig, PredictPaths, predict_test
from whale_retrieval.answers import AnswerRule
from whale_retrieval.postprocess import PostProcessing

NA_LIKE = ["NA", "null", "n/a", "None", "nan", "NaN", "#N/A"]


def test_na_like_ids_pass_prepare_and_stay_strings_in_every_reader(tmp_path: Path) -> None:
    raw = make_kaggle_layout(tmp_path, n_train=len(NA_LIKE) * 2)
    train = pd.read_csv(raw / "train.csv", dtype=str, keep_default_na=False)
    train["individual_id"] = NA_LIKE * 2
    train.to_csv(raw / "train.csv", index=False)
    write_params(tmp_path, {"data": {"raw_dir": "raw"}, "prepare": {"n_folds": 2, "seed": 1}})
    proc = run_stage("prepare", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    prepared = tmp_path / "data/prepared/train.csv"
    assert sorted(set(read_table(prepared)["individual_id"])) == sorted(NA_LIKE)
    crops = crop_table("train", ["fullbody"], tmp_path)  # what train_embedder and the baseline read
    assert sorted(set(crops["label"])) == sorted(NA_LIKE)


def test_na_like_ids_reach_tune_and_predict_as_the_individuals_they_name(tmp_path: Path) -> None:
    """prepare → the OOF problem tune searches → predict's gallery and answers: every id is its own string."""
    raw = make_kaggle_layout(tmp_path, n_train=len(NA_LIKE) * 2, n_test=2)
    train = pd.read_csv(raw / "train.csv", dtype=str, keep_default_na=False)
    train["individual_id"] = NA_LIKE * 2  # two photos each: one per fold
    train.to_csv(raw / "train.csv", index=False)
    write_params(tmp_path, {"data": {"raw_dir": "raw"}, "prepare": {"n_folds": 2, "seed": 1}})
    assert run_stage("prepare", tmp_path).returncode == 0
    prepared, embeddings = tmp_path / "data/prepared", tmp_path / "embeddings"
    train = read_table(prepared / "train.csv")
    directions = np.eye(len(NA_LIKE), dtype=np.float32)  # each individual its own direction
    train_emb = directions[[NA_LIKE.index(i) for i in train["individual_id"]]]
    members = [{"model": "m", "fold": fold} for fold in (0, 1)]
    for fold in (0, 1):
        save_embeddings(embeddings / "m" / f"fold{fold}" / "train.npz", train["image"], train_emb)
        save_embeddings(embeddings / "m" / f"fold{fold}" / "test.npz", ["test00.jpg", "test01.jpg"], directions[:2])

    stacked, _ = stack_oof(pd.DataFrame(members), train.astype({"fold": int}), 4, root=embeddings)
    assert sorted(set(stacked.truth)) == sorted(NA_LIKE) == sorted(set(stacked.gallery_labels))

    for member in members:  # a checkpoint file per member: predict verifies them (no fold.json: no digest)
        member["checkpoint"] = str(tmp_path / f"best{member['fold']}.pt")
        Path(member["checkpoint"]).write_bytes(b"weights")
    (tmp_path / "selection.json").write_text(json.dumps({"members": members}))
    rule = AnswerRule(PostProcessing(threshold=0.5, k_neighbors=4)).to_dict() | {"oof_map5": 1.0}
    (tmp_path / "postprocess.json").write_text(json.dumps(rule))
    paths = PredictPaths(tmp_path / "selection.json", tmp_path / "postprocess.json", prepared, embeddings,
                         tmp_path / "features", raw)  # fmt: skip
    prediction = predict_test(PredictConfig(registered_model=None), MatchConfig(enabled=False), paths)
    assert sorted(set(prediction.gallery.labels)) == sorted(NA_LIKE)
    assert [p.split()[0] for p in prediction.submission["predictions"]] == NA_LIKE[:2]


def _prepared_workdir(root: Path) -> Path:
    """Prepared tables with NA-like ids and their crops, as the crop stage leaves them — one crop missing."""
    (root / "data/prepared").mkdir(parents=True)
    train = pd.DataFrame({"image": [f"t{i}.jpg" for i in range(8)], "species": "beluga",
                          "individual_id": (NA_LIKE[:4] * 2), "fold": [i % 2 for i in range(8)]})  # fmt: skip
    train.to_csv(root / "data/prepared/train.csv", index=False)
    pd.DataFrame({"image": ["q0.jpg"]}).to_csv(root / "data/prepared/test.csv", index=False)
    for split, names in (("train", train["image"][:-1]), ("test", ["q0.jpg"])):
        folder = root / "data/crops/fullbody" / split
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.new("RGB", (16, 16), (40, 80, 120)).save(folder / Path(name).with_suffix(".jpg"))
    common = {"backbone": "mobilenetv3_small_050", "pretrained": False, "image_size": 32, "epochs": 1}
    params = {"embedder": {"models": ["demo"], "folds": [0, 1], "common": common, "zoo": {"demo": {}}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_a_bad_input_fails_before_the_stale_checkpoints_are_removed(tmp_path: Path) -> None:
    work = _prepared_workdir(tmp_path)
    fold_dir = work / "models/embedder/demo/fold0"
    fold_dir.mkdir(parents=True)
    kept = {"best.pt": b"weights of last week", "last.pt": b"resume state", "fold.json": b'{"params_digest": "old"}'}
    for name, content in kept.items():
        (fold_dir / name).write_bytes(content)
    proc = run_stage("train_embedder", work, item={"model": "demo"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "t7.jpg: crop not found" in last and "Traceback" not in proc.stderr
    assert {name: (fold_dir / name).read_bytes() for name in kept} == kept
