"""Extraction: unit float32 rows, input order preserved, flip-TTA = normalised mean of both views."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from whale_core import ImageLoadError
from whale_embedder import EmbeddingModel, extract_embeddings
from whale_embedder.data import CropDataset


def test_flip_tta_embeddings_are_normalised_ordered_and_match_the_formula(crops, tiny_cfg):
    cfg = tiny_cfg.replace(amp="off")  # fp32 so the oracle below compares exactly
    torch.manual_seed(0)
    model = EmbeddingModel(cfg, n_classes=3).eval()
    table = crops.iloc[:20].reset_index(drop=True)
    emb = extract_embeddings(model, table, cfg, flip_tta=True, progress=False)
    assert emb.dtype == np.float32 and emb.shape == (20, cfg.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    perm = np.random.default_rng(1).permutation(20)
    permuted = extract_embeddings(model, table.iloc[perm], cfg, flip_tta=True, progress=False)
    np.testing.assert_allclose(permuted, emb[perm], atol=1e-5)

    images = torch.stack([CropDataset(table, cfg, region="fullbody", train=False)[i][0] for i in range(20)])
    with torch.no_grad():
        both = F.normalize(model(images), dim=1) + F.normalize(model(images.flip(3)), dim=1)
    np.testing.assert_allclose(emb, F.normalize(both, dim=1).numpy(), atol=1e-4)
    plain = extract_embeddings(model, list(table["path_fullbody"]), cfg, flip_tta=False, progress=False)
    assert not np.allclose(plain, emb, atol=1e-3)


def test_bf16_extraction_stays_close_to_fp32(crops, tiny_cfg):
    torch.manual_seed(0)
    model = EmbeddingModel(tiny_cfg, n_classes=3).eval()
    table = crops.iloc[:8]
    fp32 = extract_embeddings(model, table, tiny_cfg.replace(amp="off"), progress=False)
    auto = extract_embeddings(model, table, tiny_cfg.replace(amp="bf16"), progress=False)
    assert auto.dtype == np.float32
    assert (np.sum(fp32 * auto, axis=1) > 0.97).all()  # bf16 has 8 mantissa bits: cosine ≈ 1, not exactly


def test_cpu_autocast_policy():
    from whale_core.cpu import cpu_has_native_bf16
    from whale_embedder.runtime import CPU_BF16_TRAIN_MIN_PX, autocast_dtype

    cpu = torch.device("cpu")
    bf16 = torch.bfloat16 if cpu_has_native_bf16() else None
    assert autocast_dtype("auto", cpu, training=True, image_size_px=128) is None  # fp32: exact resume, fastest
    assert autocast_dtype("auto", cpu, training=True, image_size_px=CPU_BF16_TRAIN_MIN_PX) is bf16
    assert autocast_dtype("auto", cpu, training=False) is bf16
    assert autocast_dtype("fp16", cpu, training=True) is bf16  # never fp16 on a CPU
    assert autocast_dtype("off", cpu, training=False) is None


def test_an_image_cache_replays_the_decoded_photos_without_reading_them_again(crops, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(amp="off")
    torch.manual_seed(0)
    model = EmbeddingModel(cfg, n_classes=3).eval()
    paths = [shutil.copy(p, tmp_path / f"{i}.jpg") for i, p in enumerate(crops["path_fullbody"].iloc[:6])]
    cache: dict = {}
    first = extract_embeddings(model, paths, cfg, progress=False, image_cache=cache)
    assert len(cache) == 1
    for path in paths:
        path.unlink()
    np.testing.assert_array_equal(extract_embeddings(model, paths, cfg, progress=False, image_cache=cache), first)
    with pytest.raises((ImageLoadError, FileNotFoundError, OSError)):  # without the cache the photos are read
        extract_embeddings(model, paths, cfg, progress=False)
    with pytest.raises((ImageLoadError, FileNotFoundError, OSError)):  # other photos are another entry
        extract_embeddings(model, paths[:3], cfg, progress=False, image_cache=cache)
