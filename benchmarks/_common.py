"""Shared helpers of the benchmark scripts: medians of repeated timings, matmul ceilings, FLOPs, tables.

The machine is shared and noisy, so every speed is a median of several repeats and is reported as
a ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("benchmarks")


def machine_line() -> str:
    """The CPU the numbers below were measured on: its name, cores, the vector ISA torch dispatches to and native
    bf16 (the ratios of every bf16 path change sign between CPUs with and without it, see `whale_core.cpu`)."""
    import torch

    from whale_core.cpu import cpu_has_native_bf16

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability()  # "AVX512", "AVX2", "DEFAULT", or an Arm ISA
    isa = {"AVX512": "AVX-512", "DEFAULT": "no AVX2"}.get(capability, capability)
    native = "yes" if cpu_has_native_bf16() else "no (emulated: the bf16 paths are off by default)"
    return f"CPU: {name}, {os.cpu_count()} cores, {isa}, native bf16: {native}"


def median_seconds(run: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of `run()` over `repeats` calls after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(
    dtype_name: str,
    *,
    size: int = 2048,
    repeats: int = 5,
    device: str = "cpu",
    shape: tuple[int, int, int] | None = None,
    rows_by_dim: bool = False,
    prepacked: bool = False,
) -> float:
    """Measured GFLOP/s of a torch matmul in `dtype_name` ("float32", "bfloat16").

    Square `size` × `size` by default; `shape` = (m, n, k) times an [m, k] by a [k, n] matrix instead.
    `rows_by_dim`: the second matrix is stored [n, k] and used transposed, as a search multiplies by
    gallery rows (oneDNN's rate differs between the two layouts). `prepacked` (bf16 on the CPU, implies
    `rows_by_dim`): the second matrix is packed once for oneDNN, as `whale_retrieval.bf16_gallery` does.
    """
    import torch

    m, n, k = shape or (size, size, size)
    dtype = getattr(torch, dtype_name)
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(n, k, device=device).to(dtype).T if rows_by_dim else torch.randn(k, n, device=device).to(dtype)

    if prepacked:
        packed = torch.ops.mkldnn._reorder_linear_weight(b.T.contiguous(), m)  # [n, k], as a linear weight

        def product():
            return torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
    else:

        def product():
            return torch.mm(a, b)

    def run() -> None:
        product()
        if device != "cpu":
            torch.cuda.synchronize()

    return 2 * m * n * k / median_seconds(run, repeats=repeats) / 1e9


def flops_per_image(model, image_size: int, *, backward: bool = False) -> float:
    """FLOPs of one image through `model` (forward, or forward + backward), by torch's FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x)
        if backward:
            out.float().sum().backward()
    return counter.get_total_flops() / 2


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; numbers right-aligned."""
    align = ["---:" if isinstance(rows[0][i], (int, float)) else "---" for i in range(len(header))] if rows else []
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        cells = [f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}×"
