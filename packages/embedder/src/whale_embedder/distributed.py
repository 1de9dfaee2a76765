"""torchrun support: the process group, rank helpers and cross-rank reductions.

Under `torchrun --nproc_per_node=N` (env `WORLD_SIZE` > 1) training wraps the model in DDP (gloo on
CPU, NCCL on GPU), each rank sees its own shard of every epoch, metrics are averaged over ranks,
and only rank 0 writes files. Without torchrun every helper is a no-op for one process.
"""

from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes files and logs."""
    return rank() == 0


def init_from_env() -> bool:
    """Join the torchrun process group if `WORLD_SIZE` > 1 (gloo on CPU, NCCL on GPU); True if joined."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    log.info("joined process group: rank %d of %d (%s)", rank(), world_size(), backend)
    return True


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean of a scalar over all ranks (the value itself without a process group)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / world_size()


def broadcast_object(obj: object) -> object:
    """Rank 0's `obj` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: object) -> list:
    """Every rank's picklable `obj`, indexed by rank (`[obj]` without a process group)."""
    if not is_distributed():
        return [obj]
    boxes: list = [None] * world_size()
    dist.all_gather_object(boxes, obj)
    return boxes


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP re-broadcasts buffers at the start of each forward, then every rank updates them with its own
    batch, so after the last training step the ranks' running statistics differ; this makes every rank
    hold rank 0's model (the one rank 0 checkpoints).
    """
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def shutdown() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()
