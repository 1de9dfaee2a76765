"""torchrun with 2 gloo processes on CPU: a few training epochs and a sharded extraction.

The test writes a small script, runs it under `python -m torch.distributed.run --nproc_per_node=2` on the
loopback interface, and checks what each rank reported against a single-process run of the same checkpoint,
and that after training every rank holds the same weights — backbone, neck, ArcFace and species heads.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.embedder.conftest import stage_layout
from whale_embedder import EmbedderConfig, evaluate_model, extract_embeddings, model_from_checkpoint

pytestmark = pytest.mark.train  # trains a model: not part of `make test-fast`

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import numpy as np
    import pandas as pd
    import torch

    from whale_embedder import EmbedderConfig, extract_embeddings, model_from_checkpoint, train_fold
    from whale_embedder import distributed as dist_utils

    root = Path(sys.argv[1])
    assert dist_utils.init_from_env()
    rank = dist_utils.rank()
    cfg = EmbedderConfig.from_dict(json.loads((root / "cfg.json").read_text()))
    table = pd.read_csv(root / "crops.csv", dtype=str)
    is_val = np.arange(len(table)) % 4 == 0
    epochs = []
    result = train_fold(
        cfg, table[~is_val], table[is_val], out_dir=root / f"rank{rank}", progress=False,
        on_epoch_end=lambda metrics, epoch: epochs.append(metrics),
    )
    model, _ = model_from_checkpoint(root / "rank0" / "best.pt")  # rank 0's checkpoint, read by every rank
    emb = extract_embeddings(model, table, cfg, progress=False)
    np.save(root / f"emb{rank}.npy", emb)
    report = {
        "rank": rank,
        "world": dist_utils.world_size(),
        "epochs": epochs,
        "mean_of_rank_plus_one": dist_utils.mean_over_ranks(rank + 1.0, torch.device("cpu")),
    }
    (root / f"report{rank}.json").write_text(json.dumps(report))
    torch.save(result.model.state_dict(), root / f"weights{rank}.pt")  # this rank's model after the last epoch
    dist_utils.shutdown()
    """
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_two_ranks(root: Path, script: str = SCRIPT, timeout_s: float = 300) -> None:
    """`script` on 2 gloo ranks; a run past `timeout_s` (a deadlock: ranks waiting in different collectives)
    is killed with all its processes and fails the test instead of hanging it."""
    (root / "ddp_script.py").write_text(script)
    # the repo root first, whatever the caller's path adds after it (the packages' sources, when not installed)
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": python_path}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(root / "ddp_script.py"),
        str(root),
    ]
    log = root / "ddp_output.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # SIGTERM: the launcher stops its workers (each in a session of its own), then exits
            proc.terminate()
            proc.wait(timeout=60)
            pytest.fail(f"the ranks did not finish within {timeout_s} s (deadlock?):\n{log.read_text()[-4000:]}")
    output = log.read_text()
    assert proc.returncode == 0, output[-4000:]


def test_two_ranks_train_and_extract_like_one_process(tmp_path, crop_maker, tiny_params):
    # 45 photos: 33 train rows give one batch of 16 per rank; 45 rows split 23 + 22 over the ranks
    table = crop_maker(tmp_path / "crops", n_individuals=9, photos_each=5, seed=5, size=48)
    # the species of one photo only: in every step one rank's batch has no known species, so the species
    # loss is zero there — its head must still be part of that rank's backward, or DDP's reduction breaks
    table["species"] = np.where(np.arange(len(table)) == 1, "beluga", "")
    table.to_csv(tmp_path / "crops.csv", index=False)
    cfg = EmbedderConfig.from_dict({**tiny_params, "epochs": 3, "amp": "off", "species_head": True})
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))

    run_two_ranks(tmp_path)

    reports = [json.loads((tmp_path / f"report{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world"]) for r in reports] == [(0, 2), (1, 2)]
    assert sorted(p.name for p in (tmp_path / "rank0").iterdir()) == ["best.pt", "last.pt"]
    assert not (tmp_path / "rank1").exists() or not any((tmp_path / "rank1").iterdir())

    assert [r["mean_of_rank_plus_one"] for r in reports] == [1.5, 1.5]  # (1 + 2) / 2
    epochs0, epochs1 = reports[0]["epochs"], reports[1]["epochs"]
    assert len(epochs0) == len(epochs1) == 3
    for epoch0, epoch1 in zip(epochs0, epochs1):
        assert np.isfinite(epoch0["train_loss"]) and epoch0["train_loss"] == epoch1["train_loss"]
        assert epoch0["val_map5"] == epoch1["val_map5"]
    epoch0 = next(e for e in epochs0 if e["val_map5"] == max(e["val_map5"] for e in epochs0))  # best.pt's

    weights = [torch.load(tmp_path / f"weights{r}.pt", weights_only=True) for r in (0, 1)]
    assert any(k.startswith("species_head.") for k in weights[0]) and any(k.startswith("arcface.") for k in weights[0])
    assert weights[0].keys() == weights[1].keys()
    differ = [k for k in weights[0] if not torch.equal(weights[0][k], weights[1][k])]
    assert not differ, f"ranks disagree on {differ[:5]}"

    model, _ = model_from_checkpoint(tmp_path / "rank0" / "best.pt")
    is_val = np.arange(len(table)) % 4 == 0
    # the sharded validation scored rank 0's (checkpointed) model, not a mix of the ranks' BatchNorm statistics
    assert evaluate_model(model, cfg, table[~is_val], table[is_val])["val_map5"] == epoch0["val_map5"]
    single = extract_embeddings(model, table, cfg, progress=False)
    for rank in (0, 1):
        np.testing.assert_allclose(np.load(tmp_path / f"emb{rank}.npy"), single, atol=1e-5)


FOLDS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    from whale_embedder import distributed as dist_utils
    from whale_reid.common.params import EmbedderParams
    from whale_reid.common.tracking import TrackingConfig
    from whale_reid.stages.train_embedder import TrainingPaths, train_model

    root = Path(sys.argv[1])
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
    assert dist_utils.init_from_env()
    paths = TrainingPaths(root / "prepared", root / "crops", root / "models", root / "embeddings",
                          root / "metrics.json", root / "curves.csv")
    embedder = EmbedderParams.from_dict(json.loads((root / "embedder.json").read_text()))
    summary = train_model(embedder, TrackingConfig(), "tiny", paths)
    (root / f"summary{dist_utils.rank()}.json").write_text(json.dumps(summary))
    dist_utils.shutdown()
    """
)


def test_two_ranks_train_folds_and_extra_regions_without_deadlock(tmp_path, tiny_params):
    # two folds, each followed by the backfin extraction (a collective): every rank must issue the same
    # collectives in the same order, or one rank waits in a broadcast while the other gathers — a hang
    stage_layout(tmp_path)
    common = {**tiny_params, "batch_size": 8, "epochs": 2, "amp": "off"}
    embedder = {
        "models": ["tiny"],
        "folds": [0, 1],
        "common": common,
        "zoo": {"tiny": {}},
        "extra_regions": ["backfin"],
    }
    (tmp_path / "embedder.json").write_text(json.dumps(embedder))

    run_two_ranks(tmp_path, FOLDS_SCRIPT, timeout_s=180)

    summary = json.loads((tmp_path / "summary0.json").read_text())
    assert set(summary) == {"cv_map5", "cv_map5_std", "cv_map5_fold0", "cv_map5_fold1"}
    assert json.loads((tmp_path / "summary1.json").read_text()) is None  # the helper rank records nothing
    cfg = EmbedderConfig.from_dict(common)
    train = pd.read_csv(tmp_path / "prepared" / "train.csv", dtype=str)
    for k in (0, 1):
        model, _ = model_from_checkpoint(tmp_path / "models" / f"fold{k}" / "best.pt")
        for split, frame in (("train", train), ("test", pd.read_csv(tmp_path / "prepared" / "test.csv", dtype=str))):
            paths = [str(tmp_path / "crops" / "backfin" / split / image) for image in frame["image"]]
            single = extract_embeddings(model, paths, cfg.replace(extract_region="backfin"), progress=False)
            saved = np.load(tmp_path / "embeddings" / f"fold{k}" / f"{split}_backfin.npz")
            assert list(saved["image"]) == list(frame["image"])
            np.testing.assert_allclose(saved["emb"], single, atol=1e-5)  # the shards gathered in input order
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "models").rglob("*.pt")}

    run_two_ranks(tmp_path, FOLDS_SCRIPT, timeout_s=180)  # all done: every rank skips the same folds

    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "models").rglob("*.pt")} == finished
    assert json.loads((tmp_path / "summary0.json").read_text()) == summary
