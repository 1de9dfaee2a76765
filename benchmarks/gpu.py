"""GPU benchmark (runs only where CUDA is present; exits 0 with one line elsewhere).

One prepared run of under 5 minutes on one GPU, offline (random weights, synthetic batches):
- bf16 matmul peak (TFLOP/s), measured;
- tf_efficientnet_b6_ns at 768 px: training step (forward, ArcFace, backward, optimizer — the package's
  own factory and `TrainStep`) and extraction, bf16 autocast + channels_last (optionally torch.compile)
  against plain fp32: images/s, peak GPU memory, achieved TFLOP/s against the measured peak;
- retrieval at Kaggle sizes (51,033 × 27,956, 4608-d): FAISS-GPU flat search when faiss has GPU support,
  else whale-retrieval's torch bf16 backend on the GPU;
- the tiny profile end to end (its `dvc exp run` on a clone of HEAD) with every stage on CUDA.

    python benchmarks/gpu.py [--batch 16] [--steps 5] [--compile] [--pipeline-timeout 150]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(run, steps: int) -> float:
    """Median seconds of `run()` over `steps` calls after one warm-up, CUDA-synchronised."""
    import statistics

    import torch

    run()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_rows(args: argparse.Namespace, peak_tflops: float) -> list[str]:
    """Train step and extraction of b6_ns at 768 px: bf16 + channels_last (+ compile) against plain fp32."""
    import pandas as pd
    import torch
    from _common import flops_per_image

    from whale_embedder import EmbedderConfig
    from whale_embedder.step import TrainStep
    from whale_embedder.train import _build

    device = torch.device("cuda")
    table = pd.DataFrame(
        {"image": ["x"] * args.batch, "path_fullbody": ["x"] * args.batch, "label": ["a", "b"] * (args.batch // 2)}
    )
    base = EmbedderConfig(backbone="tf_efficientnet_b6_ns", image_size=768, embedding_dim=512, batch_size=args.batch)
    rows, flops = [], None
    for amp, channels_last, label in (("bf16", True, "bf16, channels_last"), ("off", False, "fp32 (baseline)")):
        cfg = base.replace(amp=amp, channels_last=channels_last, device="cuda")
        trainer = _build(cfg, table, device)
        if flops is None and args.count_flops:
            flops = flops_per_image(trainer.model.cpu(), 768)
            trainer.model.to(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        images = torch.randn(args.batch, 3, 768, 768, device=device).to(memory_format=fmt)
        labels, species = torch.arange(args.batch, device=device) % 2, torch.full((args.batch,), -1, device=device)
        step = TrainStep(trainer.model, cfg.species_loss_weight)
        step = torch.compile(step) if args.compile and amp == "bf16" else step
        dtype = torch.bfloat16 if amp == "bf16" else None

        def train_step(step=step, images=images, labels=labels, species=species, dtype=dtype, tr=trainer) -> None:
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                loss = step(images, labels, species)
            loss.backward()
            tr.optimizer.step()
            tr.optimizer.zero_grad(set_to_none=True)

        def extract(model=trainer.model, images=images, dtype=dtype) -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                model.embed(images)

        for name, run, factor in (("train step", train_step, 3.0), ("extraction", extract, 1.0)):
            torch.cuda.reset_peak_memory_stats()
            rate = args.batch / timed(run, args.steps)
            memory = torch.cuda.max_memory_allocated() / 2**30
            achieved = (
                f"{rate * flops * factor / 1e12:.1f} ({rate * flops * factor / 1e12 / peak_tflops:.0%})"
                if flops
                else "n/a"
            )
            setup = f"b6_ns @ 768px, batch {args.batch}, {label}" + (
                ", compiled" if args.compile and amp == "bf16" else ""
            )
            rows.append(f"| {setup} | {name} | {rate:.1f} img/s | {memory:.1f} GiB | {achieved} |")
        del trainer, step
        torch.cuda.empty_cache()
    return rows


def pipeline_row(timeout_s: int) -> str:
    """The tiny profile end to end on CUDA: a clone of HEAD in a temporary folder, its `dvc exp run`, wall time."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        on_cuda = ["-S", "++detector.device='0'", "-S", "++crop.device='0'", "-S", "++embedder.common.device=cuda"]
        env = {**__import__("os").environ, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pipelines.profile", "tiny", *on_cuda],
                cwd=repo,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
            status = "ok" if done.returncode == 0 else f"failed (rc {done.returncode}): {done.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired:
            status = f"stopped after {timeout_s} s"
        seconds = time.perf_counter() - start
    return f"| tiny profile, `dvc exp run` on CUDA | detector + embedder + retrieval | {seconds:.0f} s | {status} |"


def retrieval_row() -> str:
    import numpy as np

    from whale_retrieval import KnnConfig, knn_search

    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((51_033, 4608), dtype=np.float32)
    query = rng.standard_normal((27_956, 4608), dtype=np.float32)
    import faiss

    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        name, config = "FAISS-GPU flat fp32", KnnConfig(backend="faiss", use_gpu=True)
    else:
        name, config = (
            "torch bf16 + fp32 re-score on GPU",
            KnnConfig(backend="torch_bf16", use_gpu=True, memory_budget_mb=2048),
        )
    start = time.perf_counter()
    knn_search(query, gallery, 100, config=config)
    seconds = time.perf_counter() - start
    tflops = 2 * 51_033 * 27_956 * 4608 / seconds / 1e12
    return f"| retrieval 51,033 × 27,956 × 4608-d, k=100 | {name} | {seconds:.1f} s | {tflops:.1f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="torch.compile the bf16 step (adds minutes)")
    parser.add_argument("--pipeline-timeout", type=int, default=150, help="seconds for the tiny profile's dvc exp run")
    parser.add_argument("--no-flops", dest="count_flops", action="store_false", help="skip FlopCounterMode")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here; nothing measured (run it on a GPU machine)")
        return 0
    from _common import matmul_gflops

    from whale_core import configure_offline_env

    configure_offline_env(ROOT)
    peak = matmul_gflops("bfloat16", size=8192, device="cuda") / 1e3
    print(f"{torch.cuda.get_device_name()}: bf16 matmul peak {peak:.0f} TFLOP/s (measured)")
    print("| workload | path | speed | peak memory | achieved TFLOP/s (of peak) |")
    print("|---|---|---:|---:|---:|")
    for row in model_rows(args, peak):
        print(row, flush=True)
    print(retrieval_row(), flush=True)
    print(pipeline_row(args.pipeline_timeout), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
