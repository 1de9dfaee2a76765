"""Benchmark: images/s of one training step and of the training data loader.

The step is `train_fold`'s own: the package's model / ArcFace head / optimizer factory
(`whale_embedder.train._build`) and loss module (`whale_embedder.step.TrainStep`), then backward and the
optimizer step, on a ready synthetic batch — so the model's speed is measured apart from data loading. Variants:

- plain fp32 (contiguous memory, no autocast) — the baseline;
- channels_last fp32 (the package default for training on CPU: `amp: auto` → fp32);
- channels_last + bf16 autocast (`amp: bf16`).

The loader line is `train_fold`'s DataLoader alone (JPEG decode + albumentations at the training size,
`num_workers` from the config or `--workers`); it should deliver ≥ 2× what the fastest step consumes.

    python benchmarks/train_step.py [--backbone tf_efficientnet_b0] [--sizes 128 224] [--batch 32]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from _common import machine_line, markdown_table, ratio
from extract import write_crops

from whale_core import configure_offline_env
from whale_embedder import EmbedderConfig
from whale_embedder.step import TrainStep
from whale_embedder.train import _build

ROOT = Path(__file__).resolve().parents[1]
#: name → (config overrides, torch.compile the model)
VARIANTS = {
    "plain fp32 (baseline)": ({"channels_last": False, "amp": "off"}, False),
    "channels_last fp32": ({"channels_last": True, "amp": "off"}, False),
    "channels_last + bf16": ({"channels_last": True, "amp": "bf16"}, False),
    "channels_last fp32 + torch.compile": ({"channels_last": True, "amp": "off"}, True),
}


def crop_table(folder: Path, n: int, size_px: int, n_classes: int = 8) -> pd.DataFrame:
    paths = write_crops(folder, n, size_px)
    return pd.DataFrame(
        {
            "image": [p.name for p in paths],
            "path_fullbody": [str(p) for p in paths],
            "label": [f"w{i % n_classes}" for i in range(n)],
        }
    )


def make_step(cfg: EmbedderConfig, table: pd.DataFrame, compile: bool = False):
    """One training step of `train_fold` on a fixed synthetic batch, as a no-argument function."""
    device = torch.device("cpu")
    trainer = _build(cfg, table, device)
    trainer.model.train()
    step = TrainStep(trainer.model, cfg.species_loss_weight)
    forward = torch.compile(step) if compile else step
    images = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    if cfg.channels_last:
        images = images.to(memory_format=torch.channels_last)
    labels, species = torch.arange(cfg.batch_size) % 8, torch.full((cfg.batch_size,), -1)
    dtype = torch.bfloat16 if cfg.amp == "bf16" else None

    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            loss = forward(images, labels, species)
        loss.backward()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)

    return run


def step_rates(cfgs: dict[str, tuple[EmbedderConfig, bool]], table: pd.DataFrame, repeats: int) -> dict[str, float]:
    """Images/s of each variant's training step (forward + ArcFace loss + backward + optimizer step).

    The variants' steps are interleaved, one step of each per round, and each keeps its median: step times
    on a shared 2-core machine drift by ±20 % over a minute, which biases variants timed one after another.
    With `compile`, the whole training forward runs through `torch.compile` (compiled in the warm-up).
    """
    runs = {name: make_step(cfg, table, compiled) for name, (cfg, compiled) in cfgs.items()}
    for name, run in runs.items():
        for _ in range(3 if cfgs[name][1] else 2):  # warm-up: oneDNN primitives, allocator caches
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: cfgs[name][0].batch_size / statistics.median(ts) for name, ts in times.items()}


def loader_rate(cfg: EmbedderConfig, table: pd.DataFrame) -> float:
    """Images/s delivered by train_fold's DataLoader (worker start-up included once)."""
    trainer = _build(cfg, table, torch.device("cpu"))
    start, seen = time.perf_counter(), 0
    trainer.sampler.set_epoch(0)
    for images, _, _ in trainer.loader:
        seen += len(images)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tf_efficientnet_b0")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: params.yaml's)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compiling)")
    args = parser.parse_args()
    print(machine_line())
    configure_offline_env(ROOT)
    logging.basicConfig(level=logging.WARNING)
    from whale_reid.common.params import load_params

    common = load_params(ROOT / "params.yaml")["embedder"]["common"]
    workers = args.workers if args.workers is not None else int(common.get("num_workers", 0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            table = crop_table(Path(tmp) / str(size), 4 * args.batch, size)
            base = EmbedderConfig(backbone=args.backbone, image_size=size, embedding_dim=512, batch_size=args.batch)
            base = base.replace(num_workers=workers)
            variants = {name: v for name, v in VARIANTS.items() if args.compile or not v[1]}
            cfgs = {name: (base.replace(**overrides), compiled) for name, (overrides, compiled) in variants.items()}
            rates = step_rates(cfgs, table, args.repeats)
            plain = rates["plain fp32 (baseline)"]
            name = f"{args.backbone} @ {size}px, batch {args.batch}"
            rows += [[name, k, v, ratio(v, plain)] for k, v in rates.items()]
            feed = loader_rate(base, table)
            rows.append(
                [
                    name,
                    f"data loader alone ({workers} workers)",
                    feed,
                    f"{feed / max(rates.values()):.2f}× the fastest step",
                ]
            )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(markdown_table(["model", "path", "images/s", "vs plain"], rows))


if __name__ == "__main__":
    main()
