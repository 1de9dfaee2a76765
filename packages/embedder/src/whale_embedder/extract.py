"""Batched embedding extraction: L2-normalised float32 vectors in input order, optional flip-TTA.

Under torchrun every rank embeds a strided shard of the rows (rank r takes rows r, r + W, r + 2W, ...)
and the shards are gathered back to every rank in input order, so each rank returns the whole array.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from whale_core import atomic_path
from whale_embedder import distributed as dist_utils
from whale_embedder.config import EmbedderConfig
from whale_embedder.data import CropDataset
from whale_embedder.runtime import autocast, autocast_dtype, loader_options, precision_name, resolve_device

log = logging.getLogger(__name__)

#: An `image_cache` keeps a call's decoded images only up to this size (the demo's folds: ~0.1 GB a table).
IMAGE_CACHE_MAX_BYTES = 1 << 30


def as_table(df_or_paths: pd.DataFrame | Sequence[str | os.PathLike[str]], region: str) -> pd.DataFrame:
    """A crop table from either a table (returned as is) or a list of photo paths of `region`."""
    if isinstance(df_or_paths, pd.DataFrame):
        return df_or_paths
    paths = [str(p) for p in df_or_paths]
    return pd.DataFrame({"image": [os.path.basename(p) for p in paths], f"path_{region}": paths})


@torch.inference_mode()
def extract_embeddings(
    model: torch.nn.Module,
    df_or_paths: pd.DataFrame | Sequence[str | os.PathLike[str]],
    cfg: EmbedderConfig,
    *,
    region: str | None = None,
    flip_tta: bool | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    image_cache: dict | None = None,
) -> np.ndarray:
    """Embed photos with `model.embed`, returning an (N, D) float32 array of unit rows in input order.

    Args:
        model: an `EmbeddingModel` (any module with `embed(images) -> (B, D)` works).
        df_or_paths: a crop table with a `path_<region>` column, or a sequence of photo paths.
        cfg: image size, batch size, workers, `amp` (bf16 autocast on CPUs with bf16 kernels).
        region: crop column to read; defaults to `cfg.extract_region`.
        flip_tta: also embed the horizontally mirrored image and average the two (then re-normalise);
            defaults to `cfg.flip_tta`.
        device: where the model runs (it is moved there, in place, with the images); defaults to
            `cfg.device` (`auto`: CUDA when available, else CPU).
        progress: show a tqdm bar (on a terminal) and log the device / precision line at INFO; validation passes
            False, logging it at DEBUG (its epoch line reports the validation).
        image_cache: a dict owned by the caller, for one `cfg`: the decoded, resized image batches of these
            photos are kept in it (when they fit `IMAGE_CACHE_MAX_BYTES`) and read from it on the next call with
            the same photos. Validation embeds the same crops every few epochs; decoding them was ~2/3 of its time.

    Under a process group of W > 1 ranks this is a collective: every rank must call it with the same rows
    and an identical model; each embeds every W-th row and all ranks return the same full array.

    Raises:
        FloatingPointError: the model produced non-finite embeddings.
    """
    region = region or cfg.extract_region
    flip_tta = cfg.flip_tta if flip_tta is None else flip_tta
    device = resolve_device(device if device is not None else cfg.device)
    table = as_table(df_or_paths, region)
    if len(table) == 0:
        return np.zeros((0, cfg.embedding_dim), dtype=np.float32)
    shard = table.iloc[dist_utils.rank() :: dist_utils.world_size()].reset_index(drop=True)
    loader = DataLoader(
        CropDataset(shard, cfg, region=region, train=False),
        batch_size=cfg.eval_batch_size,
        shuffle=False,
        **loader_options(device, cfg.num_workers),
    )
    batches = _image_batches(loader, image_cache, (region, tuple(shard[f"path_{region}"].astype(str))), cfg)
    dtype = autocast_dtype(cfg.amp, device, training=False)
    if dist_utils.is_main_process():
        log.log(
            logging.INFO if progress else logging.DEBUG,  # validation embeds quietly: the epoch line reports it
            "embedding %d %s crops on %s (%d rank(s)): %s%s",
            len(table),
            region,
            device,
            dist_utils.world_size(),
            precision_name(dtype),
            ", flip TTA" if flip_tta else "",
        )
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    was_training = model.training
    model.to(device)  # the model goes where the images go (a checkpoint is read onto the CPU)
    model.eval()
    chunks = []
    try:
        show = progress and dist_utils.is_main_process()
        # disable=None: a bar on a terminal only, not a frame per batch in a log file
        bar = tqdm(batches, desc="embed", total=len(loader), disable=None if show else True, leave=False)
        for images in bar:
            images = images.to(device, non_blocking=True).to(memory_format=memory_format)
            with autocast(device, dtype):
                emb = model.embed(images).float()
                if flip_tta:
                    emb = emb + model.embed(torch.flip(images, dims=[3])).float()
            chunks.append(F.normalize(emb, dim=1).cpu())
    finally:
        model.train(was_training)
    out = torch.cat(chunks).numpy() if chunks else np.zeros((0, cfg.embedding_dim), dtype=np.float32)
    out = _gather_shards(out.astype(np.float32, copy=False), len(table))
    if not np.isfinite(out).all():
        raise FloatingPointError(f"non-finite embeddings for {int((~np.isfinite(out).all(1)).sum())} photos")
    return out


def _image_batches(loader: DataLoader, cache: dict | None, key: tuple, cfg: EmbedderConfig) -> Iterator[torch.Tensor]:
    """The loader's image batches; with a `cache`, recorded there under `key` once fully read (if they fit) and
    replayed from it afterwards, so the same photos are decoded once."""
    if cache is not None and key in cache:
        yield from cache[key]
        return
    n_bytes = len(loader.dataset) * 3 * cfg.image_size**2 * 4
    recorded = [] if cache is not None and n_bytes <= IMAGE_CACHE_MAX_BYTES else None
    for images, _, _ in loader:
        if recorded is not None:
            recorded.append(images)
        yield images
    if recorded is not None:
        cache[key] = recorded


def _gather_shards(shard_emb: np.ndarray, n_rows: int) -> np.ndarray:
    """Every rank's strided shard interleaved back into input order (the shard itself in one process)."""
    world = dist_utils.world_size()
    if world == 1:
        return shard_emb
    shards = dist_utils.all_gather_object(shard_emb)
    out = np.empty((n_rows, shards[0].shape[1]), dtype=np.float32)
    for rank, part in enumerate(shards):
        out[rank::world] = part
    return out


def save_embeddings(path: str | os.PathLike[str], images: Sequence[str], emb: np.ndarray, **columns) -> None:
    """Write an npz of `image` (unicode array), `emb` and extra aligned columns, loadable without pickle."""
    arrays = {"image": np.asarray([str(i) for i in images], dtype=str), "emb": np.asarray(emb, dtype=np.float32)}
    for name, values in columns.items():
        values = np.asarray(values)
        arrays[name] = values.astype(str) if values.dtype == object else values
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
