"""Memory you can plan: the saved-tensor estimate, the profiles' micro-batches against it, and gradient accumulation
and checkpointing giving the gradients of the plain large batch."""

from __future__ import annotations

import contextlib
import functools
import warnings

import pytest
import torch

from whale_core import InputError
from whale_embedder import EmbeddingModel
from whale_embedder.checkpoint import load_checkpoint
from whale_embedder.memory import activation_bytes_per_image, estimate_training_memory
from whale_embedder.step import TrainStep, accumulated_steps
from whale_embedder.train import train_fold
from whale_reid.common.params import EmbedderParams
from whale_reid.common.profiles import profile_overlay

#: the profiles' GPUs, in bytes (decimal GB, as sold); a micro-batch must leave 15 % of them free
PROFILE_GPU_BYTES = {"kaggle": 80e9, "kaggle-24gb": 24e9}


class ConvBnRelu(torch.nn.Module):
    """A step whose saved activations are known: conv saves its input, BatchNorm its input, ReLU its output."""

    def __init__(self) -> None:
        super().__init__()
        conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.net = torch.nn.Sequential(conv, torch.nn.BatchNorm2d(8), torch.nn.ReLU())

    def forward(self, images, labels, species):
        return self.net(images).mean()


def test_activations_per_image_are_the_tensors_autograd_keeps():
    # per photo of 16 × 16 px in fp32: the input (3 channels), BatchNorm's input and ReLU's output (8 each)
    assert activation_bytes_per_image(ConvBnRelu(), 16, n_classes=1, dtype=None) == (3 + 8 + 8) * 16 * 16 * 4
    # bf16 autocast: the convolution takes a bf16 copy of the input and gives bf16, which the rest keeps
    assert activation_bytes_per_image(ConvBnRelu(), 16, n_classes=1, dtype=torch.bfloat16) == (3 + 8 + 8) * 16 * 16 * 2


@functools.cache
def _estimate(backbone: str, image_size: int, embedding_dim: int):
    with warnings.catch_warnings():  # timm renames the deprecated backbone names
        warnings.simplefilter("ignore", UserWarning)
        return estimate_training_memory(backbone, image_size, embedding_dim=embedding_dim)


@pytest.mark.parametrize("profile", sorted(PROFILE_GPU_BYTES))
def test_the_profiles_micro_batches_fit_their_gpu(profile):
    embedder = EmbedderParams.from_dict(profile_overlay(profile)["embedder"])
    budget = PROFILE_GPU_BYTES[profile] * 0.85
    for name in embedder.models:
        cfg = embedder.model_config(name)
        assert cfg.batch_size * cfg.grad_accum == 32, f"{profile} {name}: the reference's effective batch of 32"
        need = _estimate(cfg.backbone, cfg.image_size, cfg.embedding_dim).bytes_for(cfg.batch_size)
        assert need <= budget, f"{profile} {name}: batch {cfg.batch_size} needs {need / 2**30:.1f} GiB"


class LinearStep(torch.nn.Module):
    """A model without batch statistics: the mean loss of a batch is the mean of its photos' losses."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(12, 3)

    def forward(self, images, labels, species):
        return torch.nn.functional.cross_entropy(self.linear(images.flatten(1)), labels)


def _after_updates(grad_accum: int, micro_batches: list) -> tuple[torch.Tensor, list[int]]:
    step = LinearStep()
    optimizer = torch.optim.Adam(step.parameters(), lr=0.1)
    updates: list[int] = []
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    steps = accumulated_steps(
        step, micro_batches, optimizer, scaler, grad_accum, contextlib.nullcontext, updates.append
    )
    assert sum(n for _, n in steps) == 16  # every photo went through a forward
    return step.linear.weight.detach().clone(), updates


def test_accumulated_micro_batches_step_like_the_large_batch():
    torch.manual_seed(1)
    images, labels = torch.randn(16, 1, 3, 4), torch.randint(0, 3, (16,))
    species = torch.full((16,), -1)
    large = [(images[:8], labels[:8], species[:8]), (images[8:], labels[8:], species[8:])]
    micro = [(images[i : i + 4], labels[i : i + 4], species[i : i + 4]) for i in range(0, 16, 4)]
    want, want_updates = _after_updates(1, large)
    got, got_updates = _after_updates(2, micro)
    assert want_updates == got_updates == [0, 1]  # two optimizer steps either way (the schedule counts these)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_an_epoch_makes_whole_updates_only(crops, tiny_cfg, tmp_path):
    # 120 photos in batches of 16: 7 micro-batches; with grad_accum 2 that is 3 whole updates (the 7th is left
    # out rather than applied as half an update with a quarter of the gradient's weight)
    result = train_fold(tiny_cfg.replace(epochs=1, grad_accum=2), crops, None, out_dir=tmp_path, progress=False)
    state = load_checkpoint(result.last_path)["optimizer"]["state"]
    assert {int(s["step"]) for s in state.values()} == {3}
    with pytest.raises(InputError, match="fewer than one batch of 16 × grad_accum 8"):
        train_fold(tiny_cfg.replace(grad_accum=8), crops, None, out_dir=tmp_path / "big", progress=False)


def test_gradient_checkpointing_gives_the_same_gradients(crops, tiny_cfg):
    images = torch.randn(4, 3, tiny_cfg.image_size, tiny_cfg.image_size)
    labels, species = torch.tensor([0, 1, 2, 0]), torch.full((4,), -1)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = EmbeddingModel(tiny_cfg.replace(grad_checkpointing=checkpointing), n_classes=3)
        TrainStep(model, 0.0)(images, labels, species).backward()
        grads.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6, msg=name)
