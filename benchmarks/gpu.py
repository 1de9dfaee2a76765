"""GPU benchmark: every row is printed as soon as it is measured, and an out-of-memory is a row, not the end.

One prepared run of under 8 minutes on one H100, offline (random weights, synthetic batches and JPEGs):
- the matmul peak (TFLOP/s) in the training precision, measured;
- per backbone of the kaggle profile (b6, v2-L, NFNet-L2) at 768 px with the 15,587-class ArcFace head, trained
  as the stage trains it (`configure_backends`: cudnn.benchmark; `autocast_dtype`: bf16 where the GPU has it
  natively, else fp16 + GradScaler; channels_last; Adam; `accumulated_steps`): training steps at micro-batches
  from the CPU estimate (`whale_embedder.memory`) up and down until the largest that fits is found — each try a
  row with img/s and peak memory, or "out of memory" — then extraction with flip TTA;
- the real data loader (`CropDataset` decoding, augmenting and resizing JPEG crops; the profile's 8 workers,
  pinned memory): images/s;
- retrieval at Kaggle size (51,033 × 27,956, 4608-d);
- optionally the tiny profile end to end on CUDA (`--pipeline-timeout 150`).

`--memory-gib 22` caps the process (`torch.cuda.set_per_process_memory_fraction`): the kaggle-24gb profile's
micro-batches checked on a larger GPU. `--dry-run` runs the same code on the CPU with a tiny backbone at 64 px and
small sizes: it proves the script, its numbers mean nothing.

    python benchmarks/gpu.py [--dry-run] [--memory-gib G] [--steps 3] [--budget-s 420] [--pipeline-timeout 0]
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_BACKBONES = ("tf_efficientnet_b6_ns", "tf_efficientnetv2_l_in21k", "eca_nfnet_l2")
KAGGLE_CLASSES = 15_587


def row(*cells: object) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def guarded(run: Callable[[], tuple[str, str]]) -> tuple[str, str] | None:
    """`run()`'s (speed, memory) cells, or None after an out-of-memory (the memory it held is given back)."""
    import torch

    try:
        return run()
    except torch.OutOfMemoryError:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None


def largest_batch(fits: Callable[[int], bool], start: int, limit: int, max_tries: int = 6) -> tuple[int, int]:
    """(largest micro-batch known to fit, smallest known not to; `limit` + 1 if none failed): doubling from `start`
    until one fails, then bisecting, at most `max_tries` calls of `fits`."""
    fit, fail, batch = 0, limit + 1, max(1, min(start, limit))
    for _ in range(max_tries):
        if fits(batch):
            fit = batch
        else:
            fail = batch
        if fail - fit <= 1:
            break
        batch = min(2 * fit, limit) if fail > limit else (fit + fail) // 2
    return fit, fail


def timed(run: Callable[[], None], steps: int, device) -> float:
    """Median seconds of `run()` over `steps` calls after one warm-up (cuDNN autotunes there), synchronised."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    run()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_gib(device) -> str:
    import torch

    return f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device.type == "cuda" else "n/a (CPU)"


def train_tries(model, cfg, args, device, start: int, deadline: float) -> int:
    """Training steps at growing, then bisected micro-batches, a row each; the largest that fits (0: none)."""
    import torch

    from whale_embedder.runtime import autocast, autocast_dtype, precision_name
    from whale_embedder.step import TrainStep, accumulated_steps

    dtype = autocast_dtype(cfg.amp, device, training=True, image_size_px=cfg.image_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)  # fp16: as train_fold scales
    step, precision = TrainStep(model, 0.0), functools.partial(autocast, device, dtype)
    setup = f"{cfg.backbone} @ {cfg.image_size}px, {precision_name(dtype)}, channels_last"

    def fits(batch: int) -> bool:
        if time.monotonic() > deadline:
            row(setup, f"train step, batch {batch}", "skipped: time budget spent", "")
            return False
        images = torch.randn(batch, 3, cfg.image_size, cfg.image_size, device=device)
        labels = torch.randint(0, args.classes, (batch,), device=device)
        batches = [(images.to(memory_format=torch.channels_last), labels, torch.full_like(labels, -1))]

        def train() -> None:
            for _ in accumulated_steps(step, batches, optimizer, scaler, 1, precision, lambda update: None):
                pass

        def measure() -> tuple[str, str]:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            return f"{batch / timed(train, args.steps, device):.1f} img/s", peak_gib(device)

        cells = guarded(measure)
        optimizer.zero_grad(set_to_none=True)
        row(setup, f"train step, batch {batch}", *(cells or ("out of memory", "")))
        return cells is not None

    fit, fail = largest_batch(fits, start, args.max_batch)
    beyond = "none tried failed" if fail > args.max_batch else f"{fail} does not"
    row(setup, "largest micro-batch that fits", f"{fit} ({beyond}; first try {start})", "")
    return fit


def backbone_rows(cfg, args, device, deadline: float) -> None:
    """The largest micro-batch that trains (starting from the CPU estimate), then extraction with flip TTA."""
    import torch

    from whale_embedder import EmbeddingModel
    from whale_embedder.memory import estimate_training_memory
    from whale_embedder.runtime import autocast, autocast_dtype, precision_name

    total = torch.cuda.mem_get_info()[1] if device.type == "cuda" else 0
    total = min(total, args.memory_gib * 2**30) if args.memory_gib and total else total
    estimate = estimate_training_memory(cfg.backbone, cfg.image_size, n_classes=args.classes)
    start = estimate.largest_batch(total, headroom=0.0) if total else 2  # the estimate's limit: does it hold?
    model = EmbeddingModel(cfg, args.classes).to(device).to(memory_format=torch.channels_last)
    batch = max(train_tries(model, cfg, args, device, start, deadline), 1)
    gc.collect()
    images = torch.randn(batch, 3, cfg.image_size, cfg.image_size, device=device)
    images = images.to(memory_format=torch.channels_last)
    dtype = autocast_dtype(cfg.amp, device, training=False)

    @torch.inference_mode()
    def extract() -> None:
        with autocast(device, dtype):
            model.embed(images) + model.embed(torch.flip(images, dims=[3]))

    model.eval()
    cells = guarded(lambda: (f"{batch / timed(extract, args.steps, device):.1f} img/s", peak_gib(device)))
    setup = f"{cfg.backbone} @ {cfg.image_size}px, {precision_name(dtype)}, channels_last"
    row(setup, f"extraction, flip TTA, batch {batch}", *(cells or ("out of memory", "")))


def loader_row(cfg, args, device) -> None:
    """The training loader on synthetic JPEG crops: decode, augment, resize, collate (and pin on CUDA)."""
    import numpy as np
    import pandas as pd
    from PIL import Image
    from torch.utils.data import DataLoader

    from whale_embedder.data import CropDataset
    from whale_embedder.runtime import loader_options
    from whale_embedder.step import EpochSampler

    n, side = (32, 320) if args.dry_run else (512, 1024)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):  # a crop-sized JPEG each: noise compresses badly, like real water
            Image.fromarray(rng.integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8)).save(f"{tmp}/{i}.jpg")
        table = pd.DataFrame(
            {
                "image": [f"{i}.jpg" for i in range(n)],
                "path_fullbody": [f"{tmp}/{i}.jpg" for i in range(n)],
                "label": [str(i % 7) for i in range(n)],
            }
        )
        dataset = CropDataset(table, cfg, region="fullbody", train=True, class_index={str(i): i for i in range(7)})
        loader = DataLoader(
            dataset,
            batch_size=16,
            sampler=EpochSampler(dataset, 0),
            drop_last=True,
            **loader_options(device, args.workers),
        )
        start = time.perf_counter()
        for images, _, _ in loader:
            images.to(device, non_blocking=True)
        rate = n / (time.perf_counter() - start)
    row(
        f"data loader, {side}×{side * 3 // 4} JPEG → {cfg.image_size}px, augmented",
        f"{args.workers} workers",
        f"{rate:.0f} img/s",
        "",
    )


def retrieval_row(args) -> None:
    import numpy as np

    from whale_retrieval import KnnConfig, knn_search

    n_gallery, n_query, dim = (2_000, 1_000, 64) if args.dry_run else (51_033, 27_956, 4608)
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((n_gallery, dim), dtype=np.float32)
    query = rng.standard_normal((n_query, dim), dtype=np.float32)
    import faiss

    if args.dry_run:
        name, config = "FAISS flat (CPU, dry run)", KnnConfig(backend="faiss")
    elif hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        name, config = "FAISS-GPU flat fp32", KnnConfig(backend="faiss", use_gpu=True)
    else:
        name = "torch bf16 + fp32 re-score on GPU"
        config = KnnConfig(backend="torch_bf16", use_gpu=True, memory_budget_mb=2048)
    start = time.perf_counter()
    knn_search(query, gallery, 100, config=config)
    seconds = time.perf_counter() - start
    row(
        f"retrieval {n_gallery:,} × {n_query:,} × {dim}-d, k=100",
        name,
        f"{seconds:.1f} s",
        f"{2 * n_gallery * n_query * dim / seconds / 1e12:.1f} TFLOP/s",
    )


def pipeline_row(timeout_s: int) -> None:
    """The tiny profile end to end on CUDA: a clone of HEAD in a temporary folder, its `dvc exp run`, wall time."""
    import os
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        on_cuda = ["-S", "++detector.device='0'", "-S", "++crop.device='0'", "-S", "++embedder.common.device=cuda"]
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
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
    row(
        "tiny profile, `dvc exp run` on CUDA",
        "detector + embedder + retrieval",
        f"{time.perf_counter() - start:.0f} s",
        status,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU, tiny backbone and sizes")
    parser.add_argument("--backbones", nargs="+", default=None, help="default: the kaggle profile's three")
    parser.add_argument("--size", type=int, default=None, help="input side (default 768; dry run 64)")
    parser.add_argument("--classes", type=int, default=KAGGLE_CLASSES, help="ArcFace rows")
    parser.add_argument("--memory-gib", type=float, default=None, help="cap this process's GPU memory (GiB)")
    parser.add_argument("--max-batch", type=int, default=None, help="largest micro-batch tried (default 128; dry 8)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement (after one warm-up)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default 8, the profile's; dry 0)")
    parser.add_argument("--budget-s", type=float, default=420, help="training tries stop after this many seconds")
    parser.add_argument("--pipeline-timeout", type=int, default=0, help="seconds for the tiny profile; 0 skips it")
    args = parser.parse_args()
    import torch

    from whale_core import configure_offline_env
    from whale_embedder import EmbedderConfig
    from whale_embedder.runtime import configure_backends

    if not args.dry_run and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here; nothing measured (run it on a GPU machine, or --dry-run)")
        return 0
    configure_offline_env(ROOT)
    dry = args.dry_run
    args.backbones = args.backbones or (["test_efficientnet.r160_in1k"] if dry else list(KAGGLE_BACKBONES))
    args.size, args.max_batch = args.size or (64 if dry else 768), args.max_batch or (8 if dry else 128)
    args.workers = (0 if dry else 8) if args.workers is None else args.workers
    device = torch.device("cpu" if dry else "cuda")
    configure_backends(device)  # as train_fold sets it: cudnn.benchmark on CUDA
    deadline = time.monotonic() + args.budget_s
    if device.type == "cuda":
        from _common import matmul_gflops

        if args.memory_gib:
            torch.cuda.set_per_process_memory_fraction(args.memory_gib * 2**30 / torch.cuda.mem_get_info()[1])
        name = "bfloat16" if torch.cuda.is_bf16_supported(including_emulation=False) else "float16"
        peak = matmul_gflops(name, size=8192, device="cuda") / 1e3
        print(f"{torch.cuda.get_device_name()}: {name} matmul peak {peak:.0f} TFLOP/s (measured)", flush=True)
    else:
        print("dry run on the CPU: tiny backbone, small sizes; the numbers mean nothing", flush=True)
    print("| workload | measurement | speed | peak memory |\n|---|---|---:|---:|", flush=True)
    for backbone in args.backbones:
        cfg = EmbedderConfig(backbone=backbone, image_size=args.size, embedding_dim=512, amp="auto", device=device.type)
        backbone_rows(cfg, args, device, deadline)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the next backbone starts from an empty GPU
    loader_row(EmbedderConfig(image_size=args.size), args, device)
    retrieval_row(args)
    if args.pipeline_timeout and not dry:
        pipeline_row(args.pipeline_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
