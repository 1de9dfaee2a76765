"""Tiny synthetic crops for the embedder tests: each individual is a fixed colour pattern pasted at a
random place on a random cluttered background (which dominates untrained features), with brightness
change and noise — identity is learnable in seconds, but not readable off raw pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from whale_embedder import EmbedderConfig


def make_crops(root: Path, n_individuals: int, photos_each: int, seed: int = 0, size: int = 48) -> pd.DataFrame:
    """Write `fullbody` and `backfin` JPEG crops and return the crop table (image, label, species, paths)."""
    rng = np.random.default_rng(seed)
    rows = []
    for ind in range(n_individuals):
        mark = np.kron(rng.integers(0, 256, size=(3, 3, 3)), np.ones((size // 6, size // 6, 1)))
        for k in range(photos_each):
            photo = np.kron(rng.integers(60, 196, size=(4, 4, 3)), np.ones((size // 4, size // 4, 1))).astype(float)
            dx, dy = rng.integers(0, size - mark.shape[0], size=2)
            photo[dy : dy + mark.shape[0], dx : dx + mark.shape[1]] = mark
            photo = photo * rng.uniform(0.8, 1.2) + rng.normal(0, 12, (size, size, 3))
            pixels = np.clip(photo, 0, 255).astype(np.uint8)
            name = f"i{ind:02d}_{k}.jpg"
            paths = {}
            for region, crop in (("fullbody", pixels), ("backfin", pixels[: size // 2])):
                path = root / region / name
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop).save(path, quality=95)
                paths[f"path_{region}"] = str(path)
            rows.append({"image": name, "label": f"ind{ind:02d}", "species": f"sp{ind % 2}", **paths})
    return pd.DataFrame(rows)


def stage_layout(root: Path) -> None:
    """The prepared tables and crop folders `whale_reid.stages.train_embedder.train_model` reads under `root`: 9
    individuals' photos in 3 folds (a few of them held out as test photos) and a 10th individual seen only in test,
    each photo with a fullbody and a backfin crop."""
    table = make_crops(root / "made", n_individuals=10, photos_each=6, seed=3, size=48)
    table["photo"] = table["image"].str.extract(r"_(\d+)\.jpg$")[0].astype(int)
    table["split"] = np.where(
        (table["label"] == "ind09") | (table["photo"] >= 4) & (table.index % 2 == 0), "test", "train"
    )
    for row in table.itertuples():
        for region in ("fullbody", "backfin"):
            dest = root / "crops" / region / row.split / row.image
            dest.parent.mkdir(parents=True, exist_ok=True)
            Path(getattr(row, f"path_{region}")).rename(dest)
    train = table[table["split"] == "train"].reset_index(drop=True)
    (root / "prepared").mkdir()
    train.assign(individual_id=train["label"], fold=[str(i % 3) for i in range(len(train))])[
        ["image", "individual_id", "species", "fold"]
    ].to_csv(root / "prepared" / "train.csv", index=False)
    table[table["split"] == "test"][["image"]].to_csv(root / "prepared" / "test.csv", index=False)


TINY = {
    "backbone": "test_efficientnet.r160_in1k",
    "image_size": 48,
    "embedding_dim": 32,
    "batch_size": 16,
    "eval_batch_size": 64,
    "epochs": 2,
    "lr": 1e-2,
    "warmup_epochs": 0,
    "flip_tta": False,
    "arcface": {"s": 16.0, "m": 0.2},
    "augment": {"affine_p": 0.0, "color_p": 0.0, "blur_p": 0.0, "dropout_p": 0.0},
}


@pytest.fixture(scope="session")
def crops(tmp_path_factory) -> pd.DataFrame:
    return make_crops(tmp_path_factory.mktemp("crops"), n_individuals=12, photos_each=10)


@pytest.fixture()
def tiny_cfg() -> EmbedderConfig:
    return EmbedderConfig.from_dict(TINY)


@pytest.fixture()
def crop_maker():
    """`make_crops` for tests that lay out their own folders."""
    return make_crops


@pytest.fixture()
def tiny_params() -> dict:
    """The tiny config as a params-style dict."""
    return dict(TINY)
