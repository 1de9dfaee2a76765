"""GPU memory of training an embedding model, estimated on the CPU: what a batch needs at an image size.

Activations: a `saved_tensors_hooks` pack hook sees every tensor autograd keeps for the backward of one training
forward (backbone, GeM, neck, ArcFace loss) under bf16 autocast and channels_last, as the GPU runs it; each
storage is counted once. The per-image part is the difference between batches of 4 and 2 (what a step keeps
once — autocast's bf16 weight copies, the weights themselves — cancels), measured at two small sizes and fitted
as a + b · pixels, then read off at the target size: convolution activations grow with H × W, the head's do not.
Fixed: fp32 parameters, gradients and Adam's two moments (16 bytes a parameter) and autocast's bf16 weight
copies (2 bytes). Not counted: the CUDA context, cuDNN workspaces, allocator fragmentation and the backward's
transient gradients — the headroom (15 % by default) is for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from whale_embedder.config import EmbedderConfig
from whale_embedder.model import EmbeddingModel
from whale_embedder.step import TrainStep

GIB = 1 << 30
#: parameters, gradients, Adam's exp_avg and exp_avg_sq in fp32, and the bf16 copy autocast makes per step
BYTES_PER_PARAMETER = 4 + 4 + 8 + 2
#: the competition's individuals: rows of the ArcFace head the kaggle profile trains
KAGGLE_CLASSES = 15_587


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """One backbone's training memory at one image size.

    Attributes:
        backbone: the timm model.
        image_size: the square input side the estimate is for.
        parameters: of the whole model (backbone, neck, ArcFace head).
        activation_bytes_per_image: kept for the backward per photo of a batch.
        fixed_bytes: parameters, gradients, optimiser state and bf16 weight copies.
    """

    backbone: str
    image_size: int
    parameters: int
    activation_bytes_per_image: float
    fixed_bytes: float

    def bytes_for(self, batch_size: int) -> float:
        """Estimated training memory of one micro-batch of `batch_size` photos."""
        return self.fixed_bytes + batch_size * self.activation_bytes_per_image

    def largest_batch(self, gpu_bytes: float, headroom: float = 0.15) -> int:
        """The largest micro-batch whose estimate leaves `headroom` of `gpu_bytes` free (0: none fits)."""
        room = gpu_bytes * (1 - headroom) - self.fixed_bytes
        return max(0, int(room // self.activation_bytes_per_image))


def saved_bytes(
    step: Callable[..., torch.Tensor], images: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype | None
) -> int:
    """Bytes of the distinct storages autograd saves in one training forward of `step` (no backward is run)."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor  # kept alive by the graph until the forward ends, so no address is reused meanwhile

    species = torch.full_like(labels, -1)
    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)
    with hooks, torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        loss = step(images, labels, species)
    del loss
    return sum(storages.values())


def activation_bytes_per_image(
    step: Callable[..., torch.Tensor], size: int, n_classes: int, dtype: torch.dtype | None
) -> float:
    """What one more photo of `size` px adds to the saved bytes: half the difference between batches of 4 and 2
    (BatchNorm1d needs two photos to train; what a step keeps once, whatever the batch, cancels)."""
    kept = []
    for batch in (2, 4):
        images = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
        kept.append(saved_bytes(step, images, torch.arange(batch) % n_classes, dtype))
    return (kept[1] - kept[0]) / 2


def estimate_training_memory(
    backbone: str,
    image_size: int,
    *,
    n_classes: int = KAGGLE_CLASSES,
    embedding_dim: int = 512,
    measure_sizes: tuple[int, int] = (96, 128),
    dtype: torch.dtype | None = torch.bfloat16,
) -> MemoryEstimate:
    """Estimate training memory of `backbone` (random weights, nothing downloaded) at `image_size`.

    Args:
        n_classes: rows of the ArcFace head (its weights count in the fixed part).
        measure_sizes: the two small input sides the per-image activations are measured at (multiples of 32
            keep every stage's feature map whole, as at 768 px).
        dtype: the autocast dtype (bf16, as on an A100/H100; None for fp32).
    """
    cfg = EmbedderConfig(backbone=backbone, image_size=max(measure_sizes), embedding_dim=embedding_dim)
    torch.manual_seed(0)
    model = EmbeddingModel(cfg, n_classes).to(memory_format=torch.channels_last).train()
    step = TrainStep(model, species_loss_weight=0.0)
    (s0, s1), (a0, a1) = measure_sizes, [activation_bytes_per_image(step, s, n_classes, dtype) for s in measure_sizes]
    slope = (a1 - a0) / (s1**2 - s0**2)  # bytes per pixel per image
    activations = a0 + slope * (image_size**2 - s0**2)
    parameters = sum(p.numel() for p in model.parameters())
    return MemoryEstimate(backbone, image_size, parameters, activations, float(parameters * BYTES_PER_PARAMETER))
