"""Validation MAP@5 of a fold: kNN of the val photos against the train-fold photos.

Val individuals absent from the train fold are the `new_individual` answers; the threshold that
inserts `new_individual` is swept over a grid and the best is reported, split into known/new.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from whale_embedder.config import EmbedderConfig
from whale_embedder.extract import extract_embeddings
from whale_retrieval import NEW_INDIVIDUAL, knn_search, rank_individuals, sweep_thresholds


def fold_truth(val_labels: pd.Series, train_labels: pd.Series) -> list[str]:
    """Each val photo's expected answer: its id if the train fold knows it, else `new_individual`."""
    known = set(train_labels.astype(str))
    return [label if label in known else NEW_INDIVIDUAL for label in val_labels.astype(str)]


def score_embeddings(
    val_emb: np.ndarray, gallery_emb: np.ndarray, gallery_labels: pd.Series, truth: list[str], cfg: EmbedderConfig
) -> dict[str, float]:
    """Best-threshold MAP@5 of val embeddings against a labelled gallery.

    Returns:
        `val_map5`, `val_map5_known`, `val_map5_new` (NaN where the fold has no such photo) and
        `threshold`, all at the threshold of the grid with the highest MAP@5 (lowest on ties).
    """
    sims, idx = knn_search(val_emb, gallery_emb, min(cfg.knn_k, len(gallery_emb)))
    ranked = rank_individuals(sims, idx, gallery_labels.astype(str).tolist(), k_individuals=5)
    table = sweep_thresholds(ranked, truth, cfg.thresholds)
    best = table.loc[table["map5"].idxmax()]
    return {
        "val_map5": float(best["map5"]),
        "val_map5_known": float(best["map5_known"]),
        "val_map5_new": float(best["map5_new"]),
        "threshold": float(best["threshold"]),
    }


def evaluate_model(
    model: torch.nn.Module,
    cfg: EmbedderConfig,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    *,
    device: torch.device | None = None,
    flip_tta: bool = False,
    image_cache: dict | None = None,
) -> dict[str, float]:
    """Embed both tables with `model` and score the val photos against the train photos (`score_embeddings`).

    `image_cache`: kept across calls by the caller (one fold's validations), see `extract_embeddings`.
    """
    embed = dict(flip_tta=flip_tta, device=device, progress=False, image_cache=image_cache)
    gallery = extract_embeddings(model, train_df, cfg, **embed)
    queries = extract_embeddings(model, val_df, cfg, **embed)
    truth = fold_truth(val_df["label"], train_df["label"])
    return score_embeddings(queries, gallery, train_df["label"], truth, cfg)
