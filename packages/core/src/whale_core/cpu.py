"""What this machine's CPU computes natively: the one test every bf16 path asks (torch optional).

The embedder's autocast, the retrieval's bf16 candidate pass and the matcher's bf16 ratio test only pay
where the CPU multiplies bf16 in hardware. torch's own `torch.ops.mkldnn._is_mkldnn_bf16_supported()` is
not that test on x86: it is true on every AVX-512 CPU, where oneDNN emulates bf16 through fp32. Measured
with torch 2.14, 2 threads, 4096³: an AVX512-BF16 CPU (Zen 5) runs bf16 at 810–830 GFLOP/s against fp32
≈ 210 (≈ 4×), an AVX-512 CPU without it (Ice Lake Xeon) at 61 against fp32 309 (0.2×: every bf16 path
five times slower than fp32 there).
"""

from __future__ import annotations

import functools
import platform

_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware: AVX512-BF16 or AMX on x86, the BF16 extension on Arm.

    False without torch, without oneDNN, and on any CPU where bf16 would be emulated.
    """
    try:
        import torch
    except ImportError:
        return False
    if platform.machine().lower() in _X86:
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    try:  # on Arm, oneDNN's test is the hardware's (cpuinfo's BF16 extension flag)
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
