"""Where and in which precision the network runs: device, loader options, autocast dtype, seeds.

Measured on an AVX-512-BF16 CPU: bf16 matmul ≈ 4.4× fp32 and fp16 ≈ 1/75 of fp32, so fp16 is never
used on CPU; small-image training is fastest in plain fp32 channels_last, inference in bf16. On CPUs that
only emulate bf16 (`whale_core.cpu`), everything stays fp32.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random

import numpy as np
import torch

from whale_core import InputError
from whale_core.cpu import cpu_has_native_bf16

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    """This process's CUDA device (its local rank under torchrun) or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@functools.cache
def _warn_cpu_fallback() -> None:
    """Once a process: `auto` fell back to the CPU (every extraction resolves the device again)."""
    log.warning("embedder.device: auto found no CUDA device; running on the CPU (set cuda to require one)")


def resolve_device(setting: str | torch.device | None) -> torch.device:
    """The torch device of an `embedder.device` setting: `auto` (or None) → `default_device()`, else as named.

    `cuda` without an index means this process's CUDA device (its local rank under torchrun).

    Raises:
        InputError: an unknown device name, or CUDA asked for where torch sees no CUDA device.
    """
    if isinstance(setting, torch.device):
        return setting
    if setting is None or setting == "auto":
        device = default_device()
        if device.type == "cpu":
            _warn_cpu_fallback()
        return device
    try:
        device = torch.device(setting)
    except RuntimeError:
        raise InputError(f"embedder.device: unknown device {setting!r} (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"embedder.device: {setting!r} asked for, but torch sees no CUDA device here")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def loader_options(device: torch.device, num_workers: int) -> dict:
    """DataLoader keywords for `device`: pinned host memory and workers kept alive between epochs on CUDA.

    On the CPU nothing changes (pinning only costs there), so CPU results and speed stay as they were.
    """
    if device.type != "cuda":
        return {"num_workers": num_workers}
    return {"num_workers": num_workers, "pin_memory": True, "persistent_workers": num_workers > 0}


def configure_backends(device: torch.device) -> None:
    """cuDNN autotuning on CUDA (fixed input sizes: the fastest convolution algorithms are picked once)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


#: From this input size on, bf16 autocast beats channels_last fp32 for CPU training (measured: 2.4× the
#: plain fp32 loop at 224 px, while at 128 px fp32 channels_last is faster).
CPU_BF16_TRAIN_MIN_PX = 224


def autocast_dtype(
    amp: str, device: torch.device, *, training: bool, image_size_px: int | None = None
) -> torch.dtype | None:
    """The autocast dtype for an `amp` setting (`auto|bf16|fp16|off`) on `device`, or None for fp32.

    `auto`: CUDA → bf16 where the GPU has it natively, else fp16 (`cuda_autocast_dtype`); CPU → for training, fp32 below
    `CPU_BF16_TRAIN_MIN_PX` (fastest at small sizes and bit-reproducible) and bf16 from there on where the
    CPU has bf16 kernels; bf16 for inference where the CPU has bf16 kernels. fp16 on CPU is always
    replaced (by bf16 where supported, else fp32).
    """
    if amp == "off":
        return None
    if device.type == "cuda":
        return cuda_autocast_dtype(amp, cuda_has_native_bf16(device))
    if amp == "auto" and training:
        large = image_size_px is not None and image_size_px >= CPU_BF16_TRAIN_MIN_PX
        return torch.bfloat16 if large and cpu_has_native_bf16() else None
    if amp == "fp16":
        log.warning("amp: fp16 is not used on CPU (slow there); using %s", "bf16" if cpu_has_native_bf16() else "fp32")
    return torch.bfloat16 if cpu_has_native_bf16() else None


def cuda_has_native_bf16(device: torch.device) -> bool:
    """True where the GPU computes bf16 in hardware (compute capability 8.0 on: A100, H100, RTX 30xx, L4, ...).

    `torch.cuda.is_bf16_supported()` also says True on V100 and T4, where bf16 is emulated, far slower than fp16.
    """
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def cuda_autocast_dtype(amp: str, native_bf16: bool) -> torch.dtype:
    """The CUDA autocast dtype of an `amp` setting other than `off`, given the GPU's bf16 capability.

    `auto`: bf16 where native, else fp16 (with a GradScaler: `train_fold` enables one for fp16). An explicit
    `bf16` or `fp16` is kept as asked.
    """
    if amp == "auto":
        return torch.bfloat16 if native_bf16 else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def precision_name(dtype: torch.dtype | None) -> str:
    """How a log line names an autocast dtype: `bf16 autocast`, `fp16 autocast`, or `fp32`."""
    return {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(dtype, "fp32")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """`torch.autocast` for `dtype`, or a no-op when dtype is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_states() -> dict:
    """The global RNG states, as tensors and plain values (loadable with `weights_only=True`)."""
    np_state = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        "python": [int(x) for x in random.getstate()[1]],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore what `rng_states` returned."""
    torch.set_rng_state(states["torch"])
    key = states["numpy"]["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, states["numpy"]["pos"], 0, 0.0))
    random.setstate((3, tuple(states["python"]), None))
    if "cuda" in states and torch.cuda.is_available():
        set_cuda_rng_states(states["cuda"])


def set_cuda_rng_states(saved: list[torch.Tensor]) -> None:
    """Restore saved CUDA generator states onto the devices visible now: device i gets state i, as far as both go.

    Every process saves the states of all the devices it sees (`torch.cuda.get_rng_state_all`), so a checkpoint
    written on an 8-GPU machine holds 8; resumed where fewer are visible (`CUDA_VISIBLE_DEVICES`, another
    machine) the extra ones are left out instead of failing on a device ordinal that does not exist, and
    devices beyond the saved ones keep their seeded states.
    """
    visible = torch.cuda.device_count()
    if len(saved) != visible:
        log.info(
            "checkpoint holds %d CUDA RNG states, %d devices visible: restoring %d",
            len(saved),
            visible,
            min(len(saved), visible),
        )
    for index, state in enumerate(saved[:visible]):
        torch.cuda.set_rng_state(state, index)
