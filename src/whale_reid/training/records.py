"""What one model's folds leave behind: each fold run's epochs, datasets, score and checkpoint digest, curves of
validated epochs, the MLflow parent summary, the OOF embeddings, the run record `select` reads and the DVC metrics
and plots files."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from whale_core import atomic_write_csv, atomic_write_json, file_sha256
from whale_embedder import EmbedderConfig, save_embeddings
from whale_reid.common.tracking import log_curves, log_metrics

if TYPE_CHECKING:
    from whale_reid.training.fold_job import FoldJob

CURVE_KEYS = ("epoch", "val_map5", "train_loss", "lr")
#: what the parent run shows of the config (the fold runs carry all of it): one row compares models
KEY_PARAMS = ("backbone", "image_size", "embedding_dim", "epochs", "batch_size", "lr", "arcface.s", "arcface.m",
              "arcface.subcenters", "region", "extract_region", "flip_tta")  # fmt: skip


def finite(value: float | None) -> float | None:
    """`value` as a float, or None for a missing or NaN value (JSON has no NaN)."""
    return None if value is None or math.isnan(value) else float(value)


def validated_curves(history: list[dict]) -> pd.DataFrame:
    """The measured points of a fold's history: one row per validated epoch (epoch, train_loss, lr, val_map5).

    Epochs without validation have no `val_map5`; they are left out rather than drawn as 0.
    """
    rows = [{key: h.get(key) for key in CURVE_KEYS} for h in history if finite(h.get("val_map5")) is not None]
    return pd.DataFrame(rows, columns=list(CURVE_KEYS))


def measured(fold_summary: dict) -> list[dict]:
    """A fold summary's curve points with a `val_map5` (a summary written before this rule kept every epoch)."""
    return [c for c in fold_summary["curves"] if finite(c.get("val_map5")) is not None]


def log_epoch(metrics: dict, epoch: int) -> None:
    """One epoch's finite metrics in the active (fold) run, at step `epoch`.

    The validation's best similarity threshold is logged as `val_similarity_threshold`, and only where the fold's
    validation photos include unseen animals (`val_map5_new` finite): without them every threshold up to the
    lowest similarity scores the same, and the grid's first value (0) would read like a broken metric.
    """
    finite = {key: v for key, v in metrics.items() if not math.isnan(v)}
    if "val_map5_new" not in finite:
        finite.pop("val_threshold", None)
    log_metrics({key.replace("val_threshold", "val_similarity_threshold"): v for key, v in finite.items()},
                step=epoch)  # fmt: skip


def log_fold_result(job: FoldJob, result, run_id: str) -> dict:
    """The fold run's score, curves and checkpoint digest in MLflow; the fold summary `fold.json` keeps."""
    import mlflow

    log_metrics({"cv_map5": result.metrics["val_map5"]})
    curves = validated_curves(result.history)
    log_curves(curves, "epoch", list(CURVE_KEYS[1:]), f"curves/fold{job.fold}",
               f"{job.name} fold {job.fold}: validated epochs")  # fmt: skip
    checkpoint = {"path": str(result.best_path), "sha256": file_sha256(result.best_path),
                  "best_epoch": result.best_epoch}  # fmt: skip
    mlflow.log_dict(checkpoint, "checkpoint.json")
    mlflow.set_tag("checkpoint_sha256", checkpoint["sha256"])
    return {
        "cv_map5": result.metrics["val_map5"],
        "val_map5_known": finite(result.metrics["val_map5_known"]),
        "val_map5_new": finite(result.metrics["val_map5_new"]),
        "threshold": result.metrics["val_threshold"],
        "best_epoch": result.best_epoch,
        "run_id": run_id,
        "params_digest": job.digest,
        "checkpoint_sha256": checkpoint["sha256"],
        "curves": curves.to_dict(orient="records"),
    }


def log_datasets(job: FoldJob) -> None:
    """The fold's training and validation photos as MLflow datasets (digests of the tables, no pixels)."""
    import mlflow

    columns = [c for c in ("image", "label", "species", "fold") if c in job.train.columns]
    for part, context in ((job.train[~job.is_val], "training"), (job.train[job.is_val], "validation")):
        with warnings.catch_warnings():  # a local path matches two equivalent source kinds; MLflow picks one
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(part[columns].reset_index(drop=True), source=job.source,
                                              targets="label", name=f"fold{job.fold}-{context}")  # fmt: skip
        mlflow.log_input(dataset, context=context)


def log_parent_summary(cfg: EmbedderConfig, results: dict[int, dict], new_run: bool) -> dict[str, float]:
    """The model's row in the MLflow runs table: key params, `cv_map5_fold<k>`, mean and std, all folds' curves."""
    import mlflow

    if new_run:
        flat = pd.json_normalize(cfg.to_dict()).iloc[0].to_dict()
        keys = {key: flat[key] for key in KEY_PARAMS if key in flat}
        mlflow.log_params(keys | {"folds": ",".join(map(str, results))})
    scores = np.array([r["cv_map5"] for r in results.values()], dtype=float)
    summary = {"cv_map5": float(scores.mean()), "cv_map5_std": float(scores.std())}
    summary |= {f"cv_map5_fold{k}": float(r["cv_map5"]) for k, r in results.items()}
    log_metrics(summary)
    curves = pd.DataFrame([{"fold": k, **c} for k, r in results.items() for c in measured(r)])
    log_curves(curves, "epoch", list(CURVE_KEYS[1:]), "curves/folds", "validated epochs, one line per fold", "fold")
    return summary


def write_oof(embeddings: Path, folds: list[int], train: pd.DataFrame) -> None:
    """`<embeddings>/oof.npz`: each train photo embedded by the fold checkpoint that did not train on it."""
    oof_parts = []
    for k in folds:
        emb = np.load(embeddings / f"fold{k}" / "train.npz", allow_pickle=False)["emb"]
        rows = np.flatnonzero(train["fold"].astype(int).to_numpy() == k)
        oof_parts.append((rows, emb[rows]))
    rows = np.concatenate([r for r, _ in oof_parts])
    save_embeddings(
        embeddings / "oof.npz",
        train["image"].to_numpy()[rows],
        np.concatenate([e for _, e in oof_parts]),
        label=train["label"].to_numpy()[rows].astype(str),
        fold=train["fold"].astype(int).to_numpy()[rows],
    )


def write_model_records(paths, name: str, results: dict[int, dict], summary: dict, parent_run_id: str,
                        digest: str) -> None:  # fmt: skip
    """`runs.json` (the runs behind the numbers, what `select` reads), the metrics file and the curves CSV.

    Args:
        paths: the model's `whale_reid.training.fold_job.TrainingPaths`.
    """
    fold_records = {
        str(k): {key: v for key, v in r.items() if key not in ("curves", "params_digest")} for k, r in results.items()
    }
    record = {"model": name, "cv_map5": summary["cv_map5"], "folds": fold_records,
              "parent_run_id": parent_run_id, "params_digest": digest}  # fmt: skip
    atomic_write_json(paths.model_dir / "runs.json", record)
    atomic_write_json(paths.metrics, {key: round(v, 4) for key, v in summary.items()})
    # one series per fold, validated epochs only (dvc plots: .dvc/plots/fold_curves.json colours by `fold`)
    curves = pd.DataFrame([{"model": name, "fold": k, **c} for k, r in results.items() for c in measured(r)])
    atomic_write_csv(paths.curves, curves.reindex(columns=["model", "fold", *CURVE_KEYS]))
