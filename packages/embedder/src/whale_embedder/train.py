"""Training of one CV fold: AdamW/Adam (×`head_lr_mult` head lr), warm-up + cosine, accumulation,
autocast, a checkpoint every epoch, validation MAP@5 every epoch, exact resume.

Resume is exact on the CPU path: data order is drawn from a generator seeded by (seed, epoch),
augmentation by (seed, epoch, row), and model/optimizer/scheduler/RNG states are restored from
`last.pt`, so an interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from timm.scheduler import CosineLRScheduler
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from whale_core import InputError
from whale_embedder import distributed as dist_utils
from whale_embedder.checkpoint import load_checkpoint, save_checkpoint
from whale_embedder.config import RUN_ONLY_KEYS, EmbedderConfig
from whale_embedder.data import CropDataset
from whale_embedder.evaluate import evaluate_model
from whale_embedder.model import EmbeddingModel
from whale_embedder.runtime import (
    autocast,
    autocast_dtype,
    configure_backends,
    loader_options,
    precision_name,
    resolve_device,
    rng_states,
    seed_everything,
    set_rng_states,
)
from whale_embedder.step import EpochSampler, TrainStep, accumulated_steps

log = logging.getLogger(__name__)
EpochCallback = Callable[[dict[str, float], int], None]


@dataclasses.dataclass(frozen=True)
class FoldResult:
    """Outcome of `train_fold`: the best epoch (by val MAP@5), its metrics, where the weights are, the model."""

    best_epoch: int
    metrics: dict[str, float]
    history: list[dict[str, float]]
    best_path: Path
    last_path: Path
    classes: list[str]
    model: EmbeddingModel | None = None  # this process's model after the last epoch (not necessarily the best)


@dataclasses.dataclass
class _Trainer:
    """Everything one fold's training mutates (rebuilt identically on resume, then states loaded)."""

    model: EmbeddingModel
    step: torch.nn.Module  # `TrainStep(model)`, wrapped once in DDP under a process group
    optimizer: torch.optim.Optimizer
    scheduler: CosineLRScheduler
    scaler: torch.amp.GradScaler
    dataset: CropDataset
    classes: list[str]
    species: list[str]
    class_counts: np.ndarray
    updates_per_epoch: int
    loader: DataLoader
    sampler: EpochSampler
    #: the validation tables' decoded images, replayed at every validation (`extract_embeddings`)
    val_images: dict = dataclasses.field(default_factory=dict)


def _build(cfg: EmbedderConfig, train_df: pd.DataFrame, device: torch.device) -> _Trainer:
    seed_everything(cfg.seed)
    labels = train_df["label"].astype(str)
    classes = sorted(labels.unique())
    counts = labels.value_counts().reindex(classes).to_numpy()
    known = train_df["species"].dropna().astype(str) if "species" in train_df.columns else pd.Series([], dtype=str)
    species = sorted(set(known[known.str.len() > 0]))  # a missing species is no class: those rows get -1
    dataset = CropDataset(
        train_df,
        cfg,
        region=cfg.region,
        train=True,
        class_index={c: i for i, c in enumerate(classes)},
        species_index={s: i for i, s in enumerate(species)},
    )
    model = EmbeddingModel(cfg, len(classes), len(species), counts).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    head_ids = {id(p) for p in model.head_parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": cfg.lr},
        {"params": model.head_parameters(), "lr": cfg.lr * cfg.head_lr_mult},
    ]
    opt_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_class(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = len(dataset) // (cfg.batch_size * dist_utils.world_size())
    if batches < cfg.grad_accum:
        ranks = f" on each of {dist_utils.world_size()} ranks" if dist_utils.is_distributed() else ""
        batch = f"{cfg.batch_size} × grad_accum {cfg.grad_accum}" if cfg.grad_accum > 1 else str(cfg.batch_size)
        raise InputError(f"train table: {len(dataset)} photos are fewer than one batch of {batch}{ranks}")
    updates_per_epoch = batches // cfg.grad_accum  # whole updates only: each averages grad_accum micro-batches
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=cfg.epochs * updates_per_epoch,
        lr_min=cfg.min_lr,
        warmup_t=cfg.warmup_epochs * updates_per_epoch,
        warmup_lr_init=cfg.lr * cfg.warmup_factor,
        t_in_epochs=False,
    )
    dtype = autocast_dtype(cfg.amp, device, training=True, image_size_px=cfg.image_size)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step: torch.nn.Module = TrainStep(model, cfg.species_loss_weight)
    if dist_utils.is_distributed():  # once per fold: DDP broadcasts rank 0's weights here, then syncs gradients
        step = DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = EpochSampler(dataset, cfg.seed)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, **loader_options(device, cfg.num_workers)
    )
    return _Trainer(
        model, step, optimizer, scheduler, scaler, dataset, classes, species, counts, updates_per_epoch, loader, sampler
    )


def _train_epoch(tr: _Trainer, cfg: EmbedderConfig, epoch: int, device: torch.device, progress: bool) -> dict:
    tr.step.train()
    dtype = autocast_dtype(cfg.amp, device, training=True, image_size_px=cfg.image_size)
    tr.sampler.set_epoch(epoch)
    total_loss, seen, start, speed = 0.0, 0, time.perf_counter(), 0.0
    used = tr.updates_per_epoch * cfg.grad_accum  # micro-batches of whole updates
    # disable=None: no bar when stderr is not a terminal (a log file gets the epoch lines, not a frame per batch)
    shown = progress and dist_utils.is_main_process()
    bar = tqdm(itertools.islice(tr.loader, used), desc=f"epoch {epoch}", total=used, leave=False,
               disable=None if shown else True)  # fmt: skip

    def on_device(batch):
        images, labels, species = (t.to(device, non_blocking=True) for t in batch)
        return images.to(memory_format=torch.channels_last) if cfg.channels_last else images, labels, species

    def scheduled(update: int) -> None:  # the schedule counts optimizer steps
        tr.scheduler.step_update(epoch * tr.updates_per_epoch + update + 1)

    precision = functools.partial(autocast, device, dtype)  # a fresh autocast context per forward
    steps = accumulated_steps(
        tr.step, map(on_device, bar), tr.optimizer, tr.scaler, cfg.grad_accum, precision, scheduled
    )
    for loss, n_images in steps:
        total_loss += loss * n_images
        seen += n_images
        speed = seen / max(time.perf_counter() - start, 1e-9)
        lr = tr.optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", lr=f"{lr:.2e}", img_s=f"{speed:.0f}")
    train_loss = dist_utils.mean_over_ranks(total_loss / max(seen, 1), device)
    return {"train_loss": train_loss, "lr": tr.optimizer.param_groups[0]["lr"], "images_per_s": speed}


def epoch_summary(metrics: dict[str, float]) -> str:
    """An epoch's log line in words: loss and learning rate, then val MAP@5 with what its threshold did.

    The validation's `new_individual` threshold is the one of the best MAP@5; at the grid's lowest (0) no photo
    is called new, which the line says instead of printing "val_map5_new 0, val_threshold 0".
    """
    parts = [f"{key} {metrics[key]:.4g}" for key in ("train_loss", "lr") if key in metrics]
    if "val_map5" in metrics:
        new, threshold = metrics.get("val_map5_new", math.nan), metrics.get("val_threshold", math.nan)
        if math.isnan(new):
            detail = "every val animal in the gallery"
        elif threshold <= 0:
            detail = "best with no photo called new"
        else:
            detail = f"new {new:.4g} with new_individual below similarity {threshold:.2g}"
        known = metrics.get("val_map5_known", math.nan)
        parts.append(f"val_map5 {metrics['val_map5']:.4g} (known {known:.4g}, {detail})")
    return ", ".join(parts)


def _validate(tr: _Trainer, cfg: EmbedderConfig, train_df, val_df, device: torch.device) -> dict[str, float]:
    dist_utils.broadcast_buffers(tr.model)  # every rank holds rank 0's model: the one checkpointed and validated
    if val_df is None or len(val_df) == 0:
        return {}
    # every rank takes part: extraction is sharded over the ranks and gathered (a collective)
    scores = evaluate_model(tr.model, cfg, train_df, val_df, device=device, image_cache=tr.val_images)
    metrics = {("val_threshold" if k == "threshold" else k): v for k, v in scores.items()}
    return dist_utils.broadcast_object(metrics)


def _state(tr: _Trainer, cfg: EmbedderConfig, epoch: int, history: list, best: dict | None) -> dict[str, Any]:
    return {
        "model": tr.model.state_dict(),
        "optimizer": tr.optimizer.state_dict(),
        "scheduler": tr.scheduler.state_dict(),
        "scaler": tr.scaler.state_dict(),
        "rng": rng_states(),
        "epoch": epoch,
        "history": history,
        "best": best,
        "config": cfg.to_dict(),
        "classes": tr.classes,
        "species": tr.species,
        "class_counts": torch.from_numpy(tr.class_counts.astype(np.int64)),
    }


def _try_resume(tr: _Trainer, cfg: EmbedderConfig, last_path: Path) -> tuple[int, list, dict | None]:
    state = load_checkpoint(last_path)
    saved = {key: value for key, value in state["config"].items() if key not in RUN_ONLY_KEYS}
    if saved != cfg.result_dict() or state["classes"] != tr.classes:
        log.warning("%s was trained with another config or class list; starting the fold afresh", last_path)
        return 0, [], None
    tr.model.load_state_dict(state["model"])
    tr.optimizer.load_state_dict(state["optimizer"])
    tr.scheduler.load_state_dict(state["scheduler"])
    tr.scaler.load_state_dict(state["scaler"])
    set_rng_states(state["rng"])
    log.info("resuming %s after epoch %d", last_path, state["epoch"])
    return state["epoch"] + 1, list(state["history"]), state["best"]


def train_fold(
    cfg: EmbedderConfig,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame | None,
    *,
    out_dir: str | os.PathLike[str],
    on_epoch_end: EpochCallback | None = None,
    resume: bool = True,
    device: torch.device | None = None,
    progress: bool = True,
) -> FoldResult:
    """Train one fold, validating and checkpointing every epoch.

    Args:
        cfg: the model and recipe.
        train_df: training crops (`image`, `label`, `path_<region>`, optional `species`).
        val_df: held-out crops with labels (individuals absent from `train_df` count as
            `new_individual`); None or empty skips validation and keeps the last epoch as best.
        out_dir: receives `last.pt` (every epoch) and `best.pt` (best val MAP@5).
        on_epoch_end: `callback(metrics, epoch)` with train_loss, lr, images_per_s and, on validated
            epochs (`cfg.val_every_epochs`), val_map5, val_map5_known, val_map5_new, val_threshold; called
            after the epoch's checkpoint is written.
        resume: continue from `out_dir/last.pt` when it exists and matches `cfg` and the classes.
        device: where the model and the batches go; defaults to `cfg.device` (`auto`: this process's CUDA
            device when available, else the CPU).
        progress: tqdm bars.
    """
    device = resolve_device(device if device is not None else cfg.device)
    configure_backends(device)
    out_dir = Path(out_dir)
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    tr = _build(cfg, train_df, device)
    if dist_utils.is_main_process():
        dtype = autocast_dtype(cfg.amp, device, training=True, image_size_px=cfg.image_size)
        log.info(
            "training %s at %d px on %s (%d rank(s)): %s%s, batch %d × %d accumulated%s",
            cfg.backbone,
            cfg.image_size,
            device,
            dist_utils.world_size(),
            precision_name(dtype),
            ", channels_last" if cfg.channels_last else "",
            cfg.batch_size,
            cfg.grad_accum,
            ", GradScaler" if tr.scaler.is_enabled() else "",
        )
    start_epoch, history, best = 0, [], None
    if resume and last_path.is_file():
        start_epoch, history, best = _try_resume(tr, cfg, last_path)
    has_val = val_df is not None and len(val_df) > 0
    for epoch in range(start_epoch, cfg.epochs):
        validated = (cfg.epochs - 1 - epoch) % cfg.val_every_epochs == 0
        metrics = _train_epoch(tr, cfg, epoch, device, progress)
        if validated:
            metrics |= _validate(tr, cfg, train_df, val_df, device)
        history.append({"epoch": epoch, **metrics})
        score = metrics.get("val_map5", float(epoch))  # without val photos the last epoch is the best
        if (validated or not has_val) and (best is None or score > best["score"]):
            best = {"epoch": epoch, "score": score}
            if dist_utils.is_main_process():
                save_checkpoint(best_path, _state(tr, cfg, epoch, history, best))
        if dist_utils.is_main_process():
            save_checkpoint(last_path, _state(tr, cfg, epoch, history, best))
        dist_utils.barrier()
        # a line per validated epoch (the others at DEBUG): the log says what was measured, not a row of blanks
        log.log(logging.INFO if validated else logging.DEBUG, "epoch %d/%d: %s", epoch + 1, cfg.epochs,
                epoch_summary(metrics))  # fmt: skip
        if on_epoch_end is not None:
            on_epoch_end(metrics, epoch)
    best_metrics = next(h for h in history if h["epoch"] == best["epoch"])
    metrics = {k: v for k, v in best_metrics.items() if k.startswith("val_")}
    return FoldResult(best["epoch"], metrics, history, best_path, last_path, tr.classes, tr.model)
