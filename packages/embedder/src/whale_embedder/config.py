"""Typed configuration of the embedder: backbone, head, augmentation and optimisation knobs.

`EmbedderConfig.from_dict` takes the merged params (`embedder.common` overridden by one `zoo`
entry); unknown keys fail with the key and section named.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from whale_core import REGIONS, Config, ConfigError


@dataclasses.dataclass(frozen=True)
class ArcFaceConfig(Config):
    """The ArcFace head: scale, additive angular margin and the 1st-place options.

    Attributes:
        s: logit scale (radius of the hypersphere).
        m: additive angular margin in radians (ignored per class when `dynamic_margin` is on).
        easy_margin: apply the margin only where cos θ > 0 (else the `cos θ − m·sin m` fallback rule).
        ls_eps: label smoothing mass spread over the other classes.
        subcenters: k sub-centres per class (1 = plain ArcFace); the logit is the max over them.
        dynamic_margin: per-class margins m_c = a·count_c^−λ + b (rare classes get larger margins).
        margin_a, margin_lambda, margin_b: a, λ, b of the dynamic-margin rule.
    """

    SECTION = "embedder.arcface"
    RANGES = {
        "s": "(0, 256]",
        "m": "[0, pi/2]",  # radians: 0 = no margin; beyond pi/2, cos(θ + m) is no longer a penalty
        "ls_eps": "[0, 1)",
        "subcenters": "[1, 64]",
        "margin_a": "[0, pi/2]",
        "margin_lambda": "[0, 10]",
        "margin_b": "[0, pi/2]",
    }
    s: float = 30.0
    m: float = 0.5
    easy_margin: bool = False
    ls_eps: float = 0.0
    subcenters: int = 1
    dynamic_margin: bool = False
    margin_a: float = 0.5
    margin_lambda: float = 0.25
    margin_b: float = 0.05


@dataclasses.dataclass(frozen=True)
class AugmentConfig(Config):
    """Training augmentation (albumentations); probabilities are per image. Validation only resizes."""

    SECTION = "embedder.augment"
    RANGES = {
        "hflip_p": "[0, 1]",
        "affine_p": "[0, 1]",
        "color_p": "[0, 1]",
        "blur_p": "[0, 1]",
        "dropout_p": "[0, 1]",
        "shift_frac": "[0, 1]",
        "scale_frac": "[0, 1)",
        "rotate_deg": "[0, 180]",
        "brightness": "[0, 1]",  # the factor is drawn from [1 - x, 1 + x]
        "contrast": "[0, 1]",
        "saturation": "[0, 1]",
        "hue": "[0, 0.5]",
        "dropout_holes": "[0, 100]",  # 0 acts as 1 (albumentations draws 1 to max(1, holes))
        "dropout_size_frac": "[0, 1]",
    }
    hflip_p: float = 0.0
    affine_p: float = 0.5
    shift_frac: float = 0.1
    scale_frac: float = 0.15
    rotate_deg: float = 15.0
    color_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05
    blur_p: float = 0.1
    dropout_p: float = 0.2
    dropout_holes: int = 4
    dropout_size_frac: float = 0.1


#: Settings of how a fold runs, not of what it learns: a finished or interrupted fold is kept when only they change.
#: `val_every_epochs` only chooses which epochs are scored (a kept fold keeps the best of those it validated).
#: `grad_checkpointing` recomputes the same activations (dropout's random state replayed), so it is one of them.
RUN_ONLY_KEYS = ("device", "num_workers", "eval_batch_size", "val_every_epochs", "grad_checkpointing")


@dataclasses.dataclass(frozen=True)
class EmbedderConfig(Config):
    """One embedding model and its training recipe (one entry of params `embedder.zoo`).

    Attributes:
        backbone: any timm model name.
        pretrained: let timm download/cached weights (never in the demo or tests).
        weights_file: a local weights file for the backbone (wins over `pretrained`).
        image_size: square input side in pixels.
        multiscale: GeM on the last two feature stages, concatenated.
        region: crop used for training: `fullbody`, `backfin`, or `mix` (per-image random choice
            with `region_probs`, the 1st-place "bbox mixing").
        extract_region: crop embedded for retrieval (`fullbody` or `backfin`).
        head_lr_mult: learning-rate multiplier of neck + ArcFace head over the backbone.
        batch_size: photos per forward (per rank under torchrun): what GPU memory must hold.
        grad_accum: micro-batches per optimizer step: the effective batch is batch_size × grad_accum (× ranks), the
            loss of each micro-batch is divided by it and the LR schedule counts optimizer steps. BatchNorm still
            sees micro-batches of batch_size.
        grad_checkpointing: timm's `set_grad_checkpointing` on the backbone: its blocks' activations are recomputed
            in the backward instead of kept (less memory, ~30 % more compute, the same gradients).
        device: where training, extraction and a reloaded checkpoint run: `auto` (this process's CUDA device,
            else the CPU), `cpu`, `cuda` or `cuda:N`; the model is moved to it with the data.
        amp: `auto` (bf16 where native, fp16 + GradScaler on GPUs without native bf16: V100, T4), `bf16`, `fp16`,
            `off`;
            fp16 is never used on CPU.
        min_lr: cosine floor; `warmup_epochs` linear warm-up from `lr * warmup_factor`.
        thresholds: `new_individual` thresholds swept during validation.
        val_every_epochs: validate every N-th epoch, counted back from the last (always validated);
            `best.pt` is the best validated epoch. Validation embeds the whole train and val tables, so
            on small data it costs a good share of an epoch.
    """

    SECTION = "embedder"
    RANGES = {
        "image_size": "[16, 4096]",
        "embedding_dim": "[1, 65536]",
        "gem_p": "(0, 16]",
        "species_loss_weight": "[0, 100]",
        "region_probs": ">= 0",  # weights: normalised over the regions drawn
        "epochs": ">= 1",
        "batch_size": ">= 1",
        "grad_accum": ">= 1",
        "lr": "(0, 10)",
        "head_lr_mult": "(0, 1000]",
        "weight_decay": "[0, 1]",
        "warmup_epochs": ">= 0",
        "warmup_factor": "(0, 1]",
        "min_lr": "[0, 10)",
        "num_workers": "[0, 256]",
        "eval_batch_size": ">= 1",
        "knn_k": ">= 1",
        "thresholds": "[-1, 1]",  # cosine similarity
        "val_every_epochs": ">= 1",
    }
    backbone: str = "mobilenetv3_small_050"
    pretrained: bool = False
    weights_file: str | None = None
    image_size: int = 128
    embedding_dim: int = 128
    gem_p: float = 3.0
    gem_learnable: bool = True
    multiscale: bool = False
    species_head: bool = False
    species_loss_weight: float = 0.1
    region: Literal["fullbody", "backfin", "mix"] = "fullbody"
    region_probs: dict[str, float] = dataclasses.field(default_factory=lambda: {"fullbody": 0.5, "backfin": 0.5})
    extract_region: Literal["fullbody", "backfin"] = "fullbody"
    arcface: ArcFaceConfig = dataclasses.field(default_factory=ArcFaceConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    epochs: int = 10
    batch_size: int = 32
    grad_accum: int = 1
    grad_checkpointing: bool = False
    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = 1e-3
    head_lr_mult: float = 10.0
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    warmup_factor: float = 0.1
    min_lr: float = 1e-6
    device: str = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    seed: int = 42
    num_workers: int = 0
    eval_batch_size: int = 64
    flip_tta: bool = True
    knn_k: int = 100
    thresholds: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    val_every_epochs: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        where = self.SECTION
        if self.region == "mix":
            unknown = sorted(set(self.region_probs) - set(REGIONS))
            if unknown:
                raise ConfigError(f"{where}.region_probs: unknown region '{unknown[0]}' (known: {', '.join(REGIONS)})")
            if not self.region_probs or sum(self.region_probs.values()) <= 0:
                raise ConfigError(f"{where}.region_probs: probabilities must sum to a positive number")

    def result_dict(self) -> dict:
        """The config without `RUN_ONLY_KEYS`: what decides a fold's weights, compared before resuming or skipping."""
        return {key: value for key, value in self.to_dict().items() if key not in RUN_ONLY_KEYS}

    def regions_used(self) -> tuple[str, ...]:
        """The crop regions this config reads (their `path_<region>` columns must exist)."""
        train = tuple(r for r, p in self.region_probs.items() if p > 0) if self.region == "mix" else (self.region,)
        return tuple(dict.fromkeys((*train, self.extract_region)))
