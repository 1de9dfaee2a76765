"""GPU benchmark (runs only where CUDA is present; exits 0 with a message elsewhere).

One short run of a few minutes, offline (random weights, synthetic batches):
- bf16 matmul peak (TFLOP/s), measured;
- tf_efficientnet_b6_ns at 768 px: training step (forward, ArcFace, backward, optimizer — the package's
  own factory and loss) and extraction, bf16 autocast + channels_last + torch.compile, images/s and the
  achieved TFLOP/s against the measured peak;
- retrieval at Kaggle sizes (51,033 × 27,956, 4608-d): FAISS-GPU flat search when faiss has GPU support,
  else whale-retrieval's torch bf16 backend on the GPU.

    python benchmarks/gpu.py [--batch 16] [--steps 5] [--no-compile]
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
    import pandas as pd
    import torch
    from _common import flops_per_image

    from whale_embedder import EmbedderConfig
    from whale_embedder.train import _build, _loss

    device = torch.device("cuda")
    cfg = EmbedderConfig(backbone="tf_efficientnet_b6_ns", image_size=768, embedding_dim=512, batch_size=args.batch)
    cfg = cfg.replace(amp="bf16", channels_last=True)
    table = pd.DataFrame(
        {"image": ["x"] * args.batch, "path_fullbody": ["x"] * args.batch, "label": ["a", "b"] * (args.batch // 2)}
    )
    trainer = _build(cfg, table, device)
    flops = flops_per_image(trainer.model.cpu(), 768) if args.count_flops else None
    trainer.model.to(device)
    images = torch.randn(args.batch, 3, 768, 768, device=device).to(memory_format=torch.channels_last)
    batch = (images, torch.arange(args.batch, device=device) % 2, torch.full((args.batch,), -1, device=device))
    model = torch.compile(trainer.model) if args.compile else trainer.model

    def train_step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = _loss(model, trainer, cfg, batch, device)
        loss.backward()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)

    def extract() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(images)

    rows = []
    for name, run, factor in (("train step", train_step, 3.0), ("extraction", extract, 1.0)):
        rate = args.batch / timed(run, args.steps)
        achieved = (
            f"{rate * flops * factor / 1e12:.1f} ({rate * flops * factor / 1e12 / peak_tflops:.0%})" if flops else "n/a"
        )
        setup = "b6_ns @ 768px, bf16, channels_last" + (", compiled" if args.compile else "")
        rows.append(f"| {setup} | {name} | {rate:.1f} img/s | {achieved} |")
    return rows


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
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--no-flops", dest="count_flops", action="store_false", help="skip FlopCounterMode")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here; nothing to measure (run it on a GPU machine)")
        return 0
    from _common import matmul_gflops

    from whale_core import configure_offline_env

    configure_offline_env(ROOT)
    peak = matmul_gflops("bfloat16", size=8192, device="cuda") / 1e3
    print(f"{torch.cuda.get_device_name()}: bf16 matmul peak {peak:.0f} TFLOP/s (measured)")
    print("| workload | path | speed | achieved TFLOP/s (of peak) |")
    print("|---|---|---:|---:|")
    for row in model_rows(args, peak):
        print(row)
    print(retrieval_row())
    return 0


if __name__ == "__main__":
    sys.exit(main())
