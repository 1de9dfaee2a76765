"""`cpu_has_native_bf16` against the kernel's own list of CPU features, and the paths that ask it."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from whale_core.cpu import cpu_has_native_bf16


def _linux_x86_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() != "x86_64" or not cpuinfo.exists():
        pytest.skip("the oracle reads /proc/cpuinfo of an x86-64 Linux machine")
    line = next(row for row in cpuinfo.read_text().splitlines() if row.startswith("flags"))
    return set(line.split(":", 1)[1].split())


def test_native_bf16_is_what_the_kernel_reports():
    flags = _linux_x86_flags()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert cpu_has_native_bf16() is native


def test_every_bf16_path_asks_the_same_question():
    from whale_embedder.runtime import autocast_dtype
    from whale_matcher._batch import uses_bf16
    from whale_matcher.config import MatcherConfig
    from whale_retrieval.config import KnnConfig
    from whale_retrieval.knn_bf16 import torch_bf16_status
    from whale_retrieval.searcher import AUTO_BF16_MIN_MACS, resolve_backend

    native = cpu_has_native_bf16()
    assert (autocast_dtype("auto", torch.device("cpu"), training=False) is torch.bfloat16) is native
    assert uses_bf16(MatcherConfig(), binary=False) is native
    assert torch_bf16_status(False) == (True, native)
    big = int(AUTO_BF16_MIN_MACS**0.5) + 1
    backend = resolve_backend(KnnConfig(), big, big, 1, label_aware=True)
    assert backend == ("torch_bf16" if native else "blas")
