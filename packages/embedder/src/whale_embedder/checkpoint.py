"""Training checkpoints: everything `resume` needs, loadable with `torch.load(weights_only=True)`.

A checkpoint holds state dicts (model, optimizer, scheduler, grad scaler), RNG states, the epoch,
the per-epoch history, the best score so far, the class and species names and the config as a
plain dict — no pickled objects.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from whale_core import InputError, atomic_path
from whale_embedder.config import EmbedderConfig
from whale_embedder.model import EmbeddingModel
from whale_embedder.runtime import resolve_device


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write `state` atomically (a killed run leaves the previous checkpoint intact)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`: tensors and plain containers only, never pickled code.

    Raises:
        InputError: missing or unreadable file, or one that holds pickled objects (refused: loading them
            could run arbitrary code) — the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable checkpoint ({str(err).splitlines()[0]})") from None
    except pickle.UnpicklingError:
        raise InputError(
            f"{path}: refused: the checkpoint holds pickled Python objects, not just weights (only tensors, "
            "numbers, strings and containers are loaded)"
        ) from None


def model_from_checkpoint(
    path_or_state: str | os.PathLike[str] | dict[str, Any], device: str | torch.device | None = None
) -> tuple[EmbeddingModel, EmbedderConfig]:
    """Rebuild the trained `EmbeddingModel` (eval mode) on `device` and its config from a checkpoint.

    The weights are read onto the CPU, loaded, then the model is moved to `device` (default `auto`: this
    process's CUDA device, else the CPU — not the device the checkpoint was trained on). The config is
    the one it was trained with (backbone weights off); pass the model's device to `extract_embeddings`.
    """
    state = path_or_state if isinstance(path_or_state, dict) else load_checkpoint(path_or_state)
    target = resolve_device(device)
    cfg = EmbedderConfig.from_dict(state["config"]).replace(pretrained=False, weights_file=None)
    counts = state.get("class_counts")
    model = EmbeddingModel(
        cfg, len(state["classes"]), len(state.get("species", [])), None if counts is None else counts.numpy()
    )
    model.load_state_dict(state["model"])
    return model.to(target).eval(), cfg
