"""Kill and resume: a SIGKILLed train_embedder continues where it was, and the Optuna study continues.

The reference is the uninterrupted tiny pipeline (`tiny_pipeline`): its last fold is removed from a
copy, the stage is started, killed with SIGKILL once that fold has checkpointed its first epoch (it is
then mid-way through the second), and `dvc repro` finishes it. Training is deterministic on CPU (seeded
data order and augmentation, RNG states in the checkpoint), so the final weights must equal the reference
bit for bit. In-process: a finished fold survives a change of how it runs (workers, device, ...), and CUDA
generator states saved where more GPUs were visible restore where fewer are.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time

import mlflow
import optuna
import pytest
import torch
import yaml

from tests.embedder.conftest import TINY, stage_layout
from tests.pipelines.conftest import stage_command
from tests.reliability.conftest import edit_params, run_module, stage_env
from whale_embedder.runtime import rng_states, set_rng_states
from whale_reid.common.params import EmbedderParams
from whale_reid.common.tracking import TrackingConfig
from whale_reid.stages.train_embedder import TrainingPaths, train_model

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


def test_a_finished_fold_is_kept_when_only_how_it_runs_changes(tmp_path, monkeypatch, caplog):
    # loader workers, the extraction batch, the validation cadence and the device do not change what a fold
    # learns: changing them after a finished fold must not delete and retrain it; changing the lr must
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    stage_layout(tmp_path)
    paths = TrainingPaths(
        tmp_path / "prepared",
        tmp_path / "crops",
        tmp_path / "models",
        tmp_path / "embeddings",
        tmp_path / "metrics.json",
        tmp_path / "curves.csv",
    )
    common = {**TINY, "batch_size": 8, "epochs": 1}

    def train(**changes) -> dict:
        embedder = {"models": ["tiny"], "folds": [0], "common": {**common, **changes}, "zoo": {"tiny": {}}}
        return train_model(EmbedderParams.from_dict(embedder), TrackingConfig(), "tiny", paths)

    first = train()
    best = tmp_path / "models" / "fold0" / "best.pt"
    trained = best.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="whale_reid.training.jobs"):
        kept = train(num_workers=1, eval_batch_size=16, val_every_epochs=2, device="cpu")
    assert "fold 0 of tiny is up to date; skipped" in caplog.text
    assert kept == first and best.stat().st_mtime_ns == trained

    train(lr=2e-2)
    assert best.stat().st_mtime_ns != trained  # what it learns changed: trained afresh


class _OneVisibleGpu:
    """The CUDA driver's side of restoring generator states where one GPU is visible: an ordinal past the visible
    devices fails as `torch.cuda.default_generators[i]` does there; the states set are recorded."""

    def __init__(self) -> None:
        self.restored: dict[int, torch.Tensor] = {}

    def set_rng_state(self, state: torch.Tensor, device: int | str = "cuda") -> None:
        index = 0 if isinstance(device, str) else int(device)
        if index >= 1:
            raise IndexError("tuple index out of range")
        self.restored[index] = state


def test_cuda_rng_states_of_more_gpus_restore_where_fewer_are_visible(monkeypatch):
    # no GPU here: the boundary with the driver is replaced — availability, the device count, and the per-device
    # setter (torch's `set_rng_state_all` calls it as `torch.cuda.random.set_rng_state`); everything above runs
    states = rng_states()
    saved = [torch.full((16,), 7, dtype=torch.uint8), torch.full((16,), 9, dtype=torch.uint8)]  # 2 GPUs' states
    driver = _OneVisibleGpu()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", driver.set_rng_state)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", driver.set_rng_state)

    set_rng_states({**states, "cuda": saved})

    assert list(driver.restored) == [0] and torch.equal(driver.restored[0], saved[0])
    assert torch.equal(torch.get_rng_state(), states["torch"])  # the CPU generator restored as before
