"""Albumentations pipelines and the crop dataset.

Table contract (the stage builds it; this package sees generic tables): a DataFrame with `image`
(id, str), `label` (str, training only), optional `species` (str), and one path column per crop
region, `path_fullbody` / `path_backfin`.

Randomness is a pure function of (seed, epoch, row): each sample seeds its own augmentation and
region choice, so a resumed run and any number of loader workers see exactly the same images.
"""

from __future__ import annotations

import albumentations as A
import numpy as np
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import Dataset

from whale_core import REGIONS, InputError, load_rgb
from whale_embedder.config import EmbedderConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transforms(cfg: EmbedderConfig, *, train: bool) -> A.Compose:
    """Resize to `image_size` (+ the configured augmentations when `train`), normalise, to CHW tensor."""
    size, aug = cfg.image_size, cfg.augment
    steps: list[A.BasicTransform] = [A.Resize(size, size)]
    if train:
        steps += [
            A.HorizontalFlip(p=aug.hflip_p),
            A.Affine(
                scale=(1.0 - aug.scale_frac, 1.0 + aug.scale_frac),
                translate_percent=(-aug.shift_frac, aug.shift_frac),
                rotate=(-aug.rotate_deg, aug.rotate_deg),
                p=aug.affine_p,
            ),
            A.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue, p=aug.color_p),
            A.GaussianBlur(blur_limit=(3, 5), p=aug.blur_p),
            A.CoarseDropout(
                num_holes_range=(1, max(1, aug.dropout_holes)),
                hole_height_range=(0.5 * aug.dropout_size_frac, aug.dropout_size_frac),
                hole_width_range=(0.5 * aug.dropout_size_frac, aug.dropout_size_frac),
                p=aug.dropout_p,
            ),
        ]
    steps += [A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()]
    return A.Compose(steps)


def check_table(df: pd.DataFrame, regions: tuple[str, ...], *, need_label: bool, name: str = "table") -> None:
    """Raise `InputError` naming the first missing column or empty path of the table."""
    needed = ["image", *(f"path_{r}" for r in regions)] + (["label"] if need_label else [])
    for column in needed:
        if column not in df.columns:
            raise InputError(f"{name}: missing column '{column}' (has: {', '.join(map(str, df.columns))})")
    for column in needed:
        empty = df[column].isna() | (df[column].astype(str).str.len() == 0)
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            raise InputError(f"{name}: row {row} (image {df['image'].iloc[row]!r}) has an empty '{column}'")


class CropDataset(Dataset):
    """Photos of one table as normalised tensors, with integer labels for training.

    Args:
        df: the table (see module docstring).
        cfg: image size, augmentation, region mix.
        region: `fullbody`, `backfin`, or `mix` (per-sample random choice with `cfg.region_probs`).
        train: augment (else resize + normalise only).
        class_index: label string → class number; rows get -1 without it.
        species_index: species string → number; -1 where absent.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        cfg: EmbedderConfig,
        *,
        region: str,
        train: bool,
        class_index: dict[str, int] | None = None,
        species_index: dict[str, int] | None = None,
    ) -> None:
        regions = tuple(r for r, p in cfg.region_probs.items() if p > 0) if region == "mix" else (region,)
        if any(r not in REGIONS for r in regions):
            raise InputError(f"unknown crop region '{region}' (known: {', '.join(REGIONS)}, mix)")
        check_table(df, regions, need_label=class_index is not None)
        self.regions = regions
        self.region_p = np.array([cfg.region_probs[r] for r in regions] if region == "mix" else [1.0])
        self.region_p = self.region_p / self.region_p.sum()
        self.paths = {r: df[f"path_{r}"].astype(str).to_numpy() for r in regions}
        self.labels = self._encode(df, "label", class_index)
        self.species = self._encode(df, "species", species_index)
        self.transform = build_transforms(cfg, train=train)
        self.seed, self.epoch = cfg.seed, 0

    @staticmethod
    def _encode(df: pd.DataFrame, column: str, index: dict[str, int] | None) -> np.ndarray:
        if index is None or column not in df.columns:
            return np.full(len(df), -1, dtype=np.int64)
        return np.array([index.get(str(v), -1) for v in df[column]], dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentation stream (call before each training epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int | tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        """Row `idx` (augmented for `set_epoch`'s epoch), or `(epoch, row)` as the training sampler yields."""
        epoch, idx = idx if isinstance(idx, tuple) else (self.epoch, idx)
        rng = np.random.default_rng((self.seed, epoch, idx))
        region = self.regions[int(rng.choice(len(self.regions), p=self.region_p))] if len(self.regions) > 1 else None
        pixels = np.asarray(load_rgb(self.paths[region or self.regions[0]][idx]))
        self.transform.set_random_seed(int(rng.integers(2**31)))
        image = self.transform(image=pixels)["image"]
        return image, int(self.labels[idx]), int(self.species[idx])
