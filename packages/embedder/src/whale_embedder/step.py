"""The pieces of a training step that DDP and the data loader need: the loss module, gradient accumulation and
the epoch sampler.

`TrainStep` is the module DDP wraps (once per fold): backbone, neck and both heads run inside its forward,
so every parameter's gradient is reduced across ranks. `EpochSampler` pairs each row with its epoch, so one
loader (with persistent workers on CUDA) serves the whole fold while each epoch keeps its own augmentations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler, Sampler

from whale_embedder import distributed as dist_utils
from whale_embedder.data import CropDataset
from whale_embedder.model import EmbeddingModel


class TrainStep(torch.nn.Module):
    """The training forward as one module: embeddings → ArcFace loss (+ weighted species loss).

    DDP wraps this module, so the heads run inside the wrapped forward and their gradients are reduced with
    the backbone's. The species term always touches the species head (a batch without any known species
    adds 0), so no rank ever leaves a parameter unused.
    """

    def __init__(self, model: EmbeddingModel, species_loss_weight: float) -> None:
        super().__init__()
        self.model = model
        self.species_loss_weight = species_loss_weight

    def forward(self, images: torch.Tensor, labels: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        emb = self.model(images)
        loss = F.cross_entropy(self.model.arcface(emb, labels), labels)
        if self.model.species_head is not None:
            logits = self.model.species_head(emb.float())
            n_known = (species >= 0).sum().clamp(min=1)
            species_loss = F.cross_entropy(logits, species, ignore_index=-1, reduction="sum") / n_known
            loss = loss + self.species_loss_weight * species_loss
        return loss


class EpochSampler(Sampler):
    """The epoch's photo order, each index paired with the epoch: `(epoch, row)`.

    One process: a permutation drawn from a generator seeded by (seed, epoch), as `RandomSampler` draws it.
    Under a process group: `DistributedSampler`'s shard. Carrying the epoch with the index lets the loader
    (and its persistent workers) live for the whole fold while each epoch keeps its own augmentation stream.
    """

    def __init__(self, dataset: CropDataset, seed: int) -> None:
        self.n, self.seed, self.epoch = len(dataset), seed, 0
        self.shard = None
        if dist_utils.is_distributed():
            self.shard = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.shard is not None:
            self.shard.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.shard) if self.shard is not None else self.n

    def __iter__(self):
        if self.shard is not None:
            rows = list(self.shard)
        else:
            rows = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
            rows = rows.tolist()
        return iter([(self.epoch, row) for row in rows])


def accumulated_steps(
    step: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    grad_accum: int,
    precision: Callable[[], contextlib.AbstractContextManager],
    on_update: Callable[[int], None],
) -> Iterator[tuple[float, int]]:
    """Forward and backward every micro-batch, an optimizer step every `grad_accum` of them; yields (loss, photos).

    Each micro-batch's mean loss is divided by `grad_accum`, so with micro-batches of one size an update applies
    the gradient of the mean loss over all their photos: what one batch of `grad_accum` × `batch_size` gives
    (BatchNorm's batch statistics aside: they are taken per micro-batch). Micro-batches that do not make up a
    whole update at the end are not used (give `grad_accum` × updates of them). Under DDP the accumulating
    micro-batches skip the gradient all-reduce (`no_sync`) until the update's.

    Args:
        precision: a fresh autocast context per forward (`runtime.autocast(device, dtype)`).
        on_update: called with the update's index in this call (from 0) after each optimizer step.
    """
    optimizer.zero_grad(set_to_none=True)
    for i, (images, labels, species) in enumerate(batches):
        updates = (i + 1) % grad_accum == 0
        syncing = contextlib.nullcontext() if updates or not hasattr(step, "no_sync") else step.no_sync()
        with syncing:
            with precision():
                loss = step(images, labels, species)
            scaler.scale(loss / grad_accum).backward()
        if updates:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            on_update(i // grad_accum)
        yield float(loss.detach()), len(images)
