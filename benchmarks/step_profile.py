"""Where a training step's time goes: torch.profiler's self CPU time of one `train_fold` step, by kind of op.

The step is `train_step.make_step` (the package's model, ArcFace head, loss and optimizer on a fixed batch).
Ops are grouped by what they are; convolutions are split into depthwise (one input channel per group, the
weight's second dimension is 1) and the others (pointwise 1×1 and the stem), forward and backward:

    python benchmarks/step_profile.py [--backbone tf_efficientnet_b0] [--size 128] [--batch 32] [--steps 3]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from _common import machine_line, markdown_table
from train_step import VARIANTS, crop_table, make_step

from whale_core import configure_offline_env
from whale_embedder import EmbedderConfig

ROOT = Path(__file__).resolve().parents[1]
CONV_FORWARD = (
    "aten::mkldnn_convolution",
    "aten::thnn_conv2d",
    "aten::_slow_conv2d_forward",
    "aten::_conv_depthwise2d",
)
CONV_BACKWARD = ("aten::convolution_backward",)
KINDS = {
    "batch norm": ("batch_norm",),
    "activation (SiLU, sigmoid, hardswish)": ("silu", "sigmoid", "hardswish", "hardsigmoid", "relu", "gelu"),
    "optimizer": ("_foreach", "adam", "addcdiv", "lerp", "sqrt"),
    "elementwise (mul, add, ...)": ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::fill_", "aten::where"),
    "reductions, pooling, matmul (GeM, ArcFace)": ("mean", "sum", "pow", "clamp", "mm", "addmm", "pool", "norm"),
    "copies and layout": ("copy_", "to_dense", "contiguous", "empty", "clone", "zero_"),
}


def kind_of(event) -> str:
    """The row of the table an op's self time counts in."""
    name = event.key
    weight_index = 1 if name in CONV_FORWARD else 2 if name in CONV_BACKWARD else None
    if weight_index is not None:
        shapes = event.input_shapes
        depthwise = len(shapes) > weight_index and len(shapes[weight_index]) == 4 and shapes[weight_index][1] == 1
        direction = "forward" if weight_index == 1 else "backward"
        return f"conv {'depthwise' if depthwise else 'pointwise / stem'} {direction}"
    for kind, parts in KINDS.items():
        if any(part in name for part in parts):
            return kind
    return "other"


def step_profile(cfg: EmbedderConfig, table, steps: int) -> tuple[dict[str, float], float]:
    """(milliseconds of self CPU time per step by kind, their total) over `steps` profiled steps."""
    run = make_step(cfg, table)
    for _ in range(3):  # warm-up: oneDNN primitives and allocator caches
        run()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            run()
    by_kind: dict[str, float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        by_kind[kind_of(event)] += event.self_cpu_time_total / 1000.0 / steps
    total_ms = sum(by_kind.values())
    return dict(by_kind), total_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tf_efficientnet_b0")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    configure_offline_env(ROOT)
    logging.basicConfig(level=logging.WARNING)
    base = EmbedderConfig(backbone=args.backbone, image_size=args.size, embedding_dim=512, batch_size=args.batch)
    profiles = {}
    with tempfile.TemporaryDirectory() as tmp:
        table = crop_table(Path(tmp), 4 * args.batch, args.size)
        for name, (overrides, compiled) in VARIANTS.items():
            if not compiled:
                profiles[name] = step_profile(base.replace(**overrides), table, args.steps)
    names = list(profiles)
    kinds = sorted(
        {k for by_kind, _ in profiles.values() for k in by_kind}, key=lambda k: -profiles[names[0]][0].get(k, 0)
    )
    rows = []
    for kind in [*kinds, "total (self CPU time)"]:
        row = [kind]
        for name in names:
            by_kind, total = profiles[name]
            ms = total if kind.startswith("total") else by_kind.get(kind, 0.0)
            row.append(f"{ms:.0f} ms ({100 * ms / total:.0f} %)")
        rows.append(row)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.backbone} @ {args.size}px, "
        f"batch {args.batch}: self CPU time per training step"
    )
    print(markdown_table(["op kind", *names], rows))


if __name__ == "__main__":
    main()
