"""Kill and resume: a SIGKILLed train_embedder continues where it was, and the Optuna study continues.

The reference is the uninterrupted tiny pipeline (`tiny_pipeline`): its last fold is removed from a
copy, the stage is started, killed with SIGKILL once that fold has checkpointed its first epoch (it is
then mid-way through the second), and `dvc repro` finishes it. Training is deterministic on CPU (seeded
data order and augmentation, RNG states in the checkpoint), so the final weights must equal the reference
bit for bit.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import mlflow
import optuna
import pytest
import torch
import yaml

from tests.pipelines.conftest import stage_command
from tests.reliability.conftest import edit_params, run_module, stage_env

MODEL = "demo"


def _forget_folds(repo, folds: list[int]) -> None:
    """Remove the folds' outputs and mark their MLflow runs deleted, as if they had never been trained."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    for k in folds:
        fold_dir = repo / f"models/embedder/{MODEL}/fold{k}"
        client.delete_run(json.loads((fold_dir / "mlflow_run.json").read_text())["run_id"])
        for path in [*fold_dir.iterdir(), *(repo / f"embeddings/{MODEL}/fold{k}").iterdir()]:
            path.unlink()


def _epoch_logged(repo, fold_dir) -> bool:
    """True once the fold's first epoch is both checkpointed and logged to MLflow (the callback runs after
    the checkpoint is written, so killing at the first sight of `last.pt` could lose epoch 0's metrics)."""
    run_file = fold_dir / "mlflow_run.json"
    if not (fold_dir / "last.pt").is_file() or not run_file.is_file():
        return False
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    # train_loss: logged every epoch (val_map5 only on validated epochs, see embedder.val_every_epochs)
    return bool(client.get_metric_history(json.loads(run_file.read_text())["run_id"], "train_loss"))


def _start_and_kill_when(repo, fold_dir, timeout_s: float = 300) -> None:
    proc = subprocess.Popen(
        stage_command("train_embedder", repo, {"model": MODEL}),
        cwd=repo, env=stage_env(repo), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while not _epoch_logged(repo, fold_dir):
            assert proc.poll() is None, "the stage ended before it could be killed"
            assert time.monotonic() < deadline, f"{fold_dir}: epoch 0 was never checkpointed and logged"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()


@pytest.mark.slow
def test_killed_train_embedder_resumes_to_the_same_weights_and_runs(pipeline_copy, tiny_pipeline):
    repo = pipeline_copy
    _forget_folds(repo, [2])
    _start_and_kill_when(repo, repo / f"models/embedder/{MODEL}/fold2")
    killed_run = json.loads((repo / f"models/embedder/{MODEL}/fold2/mlflow_run.json").read_text())["run_id"]
    assert not (repo / f"models/embedder/{MODEL}/fold2/fold.json").exists()

    proc = subprocess.run(
        ["dvc", "repro", f"train_embedder@{MODEL}"], cwd=repo, env=stage_env(repo),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert f"fold 0 of {MODEL} is up to date; skipped" in output
    assert f"fold 1 of {MODEL} is up to date; skipped" in output
    assert f"resuming models/embedder/{MODEL}/fold2/last.pt after epoch 0" in output

    for k in (0, 1, 2):
        got = torch.load(repo / f"models/embedder/{MODEL}/fold{k}/best.pt", weights_only=True)["model"]
        want = torch.load(tiny_pipeline / f"models/embedder/{MODEL}/fold{k}/best.pt", weights_only=True)["model"]
        assert got.keys() == want.keys()
        assert all(torch.equal(got[key], want[key]) for key in want), f"fold {k} weights differ"
    got = json.loads((repo / f"models/embedder/{MODEL}/runs.json").read_text())
    want = json.loads((tiny_pipeline / f"models/embedder/{MODEL}/runs.json").read_text())
    for k, entry in want["folds"].items():
        assert got["folds"][k]["cv_map5"] == entry["cv_map5"] and got["folds"][k]["best_epoch"] == entry["best_epoch"]
    assert got["folds"]["2"]["run_id"] == killed_run  # the killed fold continued its own MLflow run

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("whale-reid").experiment_id], max_results=1000)
    parents = [r for r in runs if r.info.run_name == f"embedder/{MODEL}"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.info.run_name for r in children) == ["fold0", "fold1", "fold2"]
    assert all(r.info.status == "FINISHED" for r in children)
    resumed = client.get_metric_history(killed_run, "train_loss")
    epochs = yaml.safe_load((repo / "params.yaml").read_text())["embedder"]["common"]["epochs"]
    assert sorted(m.step for m in resumed) == list(range(epochs))  # epoch 0 logged before the kill, the rest after


def _trials(repo) -> list[tuple[int, dict, float]]:
    storage = f"sqlite:///{repo}/optuna.db"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith("resume-")]
    assert len(names) == 1, names
    study = optuna.load_study(study_name=names[0], storage=storage)
    return [(t.number, t.params, t.value) for t in study.trials if t.state.is_finished()]


def test_tune_continues_its_study_without_repeating_trials(pipeline_copy):
    # species offsets grow the space past the 1-D threshold grid, so TPE runs `n_trials` (a grid runs each value once)
    search = {"n_trials": 3, "threshold_step": 0.05, "k_neighbors_min": 20, "k_neighbors_max": 20, "per_species": True}
    edit_params(pipeline_copy, tune={"study_name": "resume", "search": search})
    assert run_module(pipeline_copy, "tune").returncode == 0
    first = _trials(pipeline_copy)
    assert [number for number, _, _ in first] == [0, 1, 2]
    params = pipeline_copy / "params.yaml"
    params.write_text(params.read_text().replace("n_trials: 3", "n_trials: 6"))
    proc = run_module(pipeline_copy, "tune")
    assert proc.returncode == 0, proc.stderr[-2000:]
    second = _trials(pipeline_copy)
    assert [number for number, _, _ in second] == list(range(6))
    assert second[:3] == first
    assert json.loads((pipeline_copy / "outputs/postprocess.json").read_text())["n_trials"] == 6
