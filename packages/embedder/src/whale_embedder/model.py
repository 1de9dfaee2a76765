"""The embedding network: timm backbone → GeM → Linear + BatchNorm1d neck → embedding (+ heads).

Any timm model works: its classifier and pooling are removed generically (`num_classes=0,
global_pool=''`), so the backbone returns a feature map whose channels are measured once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from whale_core import InputError
from whale_embedder.config import EmbedderConfig
from whale_embedder.layers import ArcMarginProduct, GeM, dynamic_margins


def create_backbone(cfg: EmbedderConfig) -> nn.Module:
    """A timm backbone without classifier or pooling (or its last two stages when `multiscale`).

    Weights: `weights_file` (a local file, via timm's `pretrained_cfg_overlay`) wins; else timm's own
    download/cache only if `pretrained` is true; else random initialisation.
    """
    kwargs: dict = {"pretrained": bool(cfg.pretrained or cfg.weights_file)}
    if cfg.weights_file:
        if not Path(cfg.weights_file).is_file():
            raise InputError(f"{cfg.weights_file}: backbone weights file not found (embedder.weights_file)")
        kwargs["pretrained_cfg_overlay"] = {"file": str(cfg.weights_file)}
    if cfg.multiscale:
        kwargs.update(features_only=True, out_indices=(-2, -1))
    else:
        kwargs.update(num_classes=0, global_pool="")
    hub = cfg.backbone.startswith(("hf-hub:", "hf_hub:", "local-dir:"))  # timm resolves these itself
    if not hub and not timm.is_model(cfg.backbone):
        raise InputError(f"embedder.backbone: unknown timm model '{cfg.backbone}'")
    try:
        return timm.create_model(cfg.backbone, **kwargs)
    except OSError:  # huggingface_hub's LocalEntryNotFoundError (offline, not cached), connection errors
        if cfg.weights_file:
            raise
        raise InputError(missing_weights_message(cfg.backbone)) from None


def pretrained_tag(backbone: str) -> tuple[str, str | None]:
    """(timm tag, Hugging Face repo) of a backbone's default pretrained weights: deprecated names resolved
    (`tf_efficientnet_b6_ns` → `tf_efficientnet_b6.ns_jft_in1k`)."""
    from timm.models import get_deprecated_models, get_pretrained_cfg

    name = get_deprecated_models().get(backbone, backbone)
    pretrained = get_pretrained_cfg(name, allow_unregistered=False) if "." in name else get_pretrained_cfg(name)
    hub_id = getattr(pretrained, "hf_hub_id", None) if pretrained is not None else None
    tag = hub_id.removeprefix("timm/") if hub_id and hub_id.startswith("timm/") else name
    return tag, hub_id


def missing_weights_message(backbone: str) -> str:
    """One line: which weights are missing, and the two ways to supply them without a download here."""
    tag, hub_id = pretrained_tag(backbone)
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    repo = f" (Hugging Face {hub_id})" if hub_id else ""
    source = hub_id or f"timm/{tag}"
    return (
        f"embedder.pretrained: the weights of {backbone!r} — timm tag {tag}{repo} — are not in the local cache "
        f"{cache} and nothing is downloaded at run time: fetch the Hugging Face repo {source} into that cache on a "
        f"machine with internet (same HF_HOME), then copy the folder here; or set "
        f"weights_file: /path/to/{tag}.safetensors in this zoo entry"
    )


class EmbeddingModel(nn.Module):
    """Backbone + GeM + neck, with an ArcFace identity head and an optional species head.

    Args:
        cfg: the model's config.
        n_classes: number of training individuals (rows of the ArcFace head).
        n_species: size of the species head (0 = none, or `cfg.species_head` off).
        class_counts: photos per class, for dynamic margins (required when they are on).
    """

    def __init__(
        self, cfg: EmbedderConfig, n_classes: int, n_species: int = 0, class_counts: np.ndarray | None = None
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = create_backbone(cfg)
        if cfg.grad_checkpointing:
            if not hasattr(self.backbone, "set_grad_checkpointing"):
                raise InputError(f"embedder.grad_checkpointing: timm's {cfg.backbone!r} cannot recompute activations")
            self.backbone.set_grad_checkpointing(True)
        self.pool = GeM(p=cfg.gem_p, learnable=cfg.gem_learnable)
        n_features = self._pooled_width()
        self.neck = nn.Sequential(nn.Linear(n_features, cfg.embedding_dim), nn.BatchNorm1d(cfg.embedding_dim))
        arc = cfg.arcface
        margins = None
        if arc.dynamic_margin:
            if class_counts is None:
                raise ValueError("dynamic margins need the per-class photo counts")
            margins = dynamic_margins(class_counts, arc.margin_a, arc.margin_lambda, arc.margin_b)
        self.arcface = ArcMarginProduct(
            cfg.embedding_dim, n_classes, arc.s, arc.m, arc.easy_margin, arc.ls_eps, arc.subcenters, margins
        )
        use_species = cfg.species_head and n_species > 0
        self.species_head = nn.Linear(cfg.embedding_dim, n_species) if use_species else None

    def _feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        out = self.backbone(images)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    @torch.no_grad()
    def _pooled_width(self) -> int:
        was_training = self.backbone.training
        self.backbone.eval()
        probe = torch.zeros(1, 3, self.cfg.image_size, self.cfg.image_size)
        width = sum(f.shape[1] for f in self._feature_maps(probe))
        self.backbone.train(was_training)
        return width

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at the higher head learning rate: GeM p, neck, ArcFace, species head."""
        modules = [self.pool, self.neck, self.arcface] + ([self.species_head] if self.species_head else [])
        return [p for m in modules for p in m.parameters()]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Raw (un-normalised) embeddings (B, embedding_dim) in fp32."""
        pooled = torch.cat([self.pool(f) for f in self._feature_maps(images)], dim=1)
        return self.neck(pooled.float())

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings (B, embedding_dim), the retrieval representation."""
        return F.normalize(self(images).float(), dim=1)

    extract = embed
