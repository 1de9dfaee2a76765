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
import pytest
import torch

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


def run_two_ranks(root: Path) -> None:
    (root / "ddp_script.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(REPO_ROOT)}
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
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


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
