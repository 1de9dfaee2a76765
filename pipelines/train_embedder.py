"""Stage `train_embedder --model NAME`: train every configured CV fold of one zoo model, embed, log.

Reads `data/prepared/{train,test}.csv` and `data/crops/<region>/<split>/<image>.jpg`; writes
`models/embedder/<model>/fold<k>/{best,last}.pt`, `embeddings/<model>/{oof.npz, fold<k>/{train,test}.npz}`,
`metrics/embedder/<model>.json` (CV MAP@5: mean, std, per fold) and `<model>_curves.csv` (validated epochs,
a row per fold and epoch), `models/embedder/<model>/runs.json` (the MLflow run ids, digests and per-fold
details `select` reads); MLflow parent run `embedder/<model>` (key params, the fold summary, all folds'
curves) with a child run `fold<k>` per fold (its curves as CSV + PNG, its checkpoint's digest).
A finished fold (same params and data digest) is skipped; an interrupted one resumes from its last
checkpoint and continues its MLflow run (ids in `mlflow_run.json` beside the checkpoints); a fold or model
whose digest changed starts afresh with new runs.

Runs unchanged under `torchrun --nproc_per_node=N -m pipelines.train_embedder --model NAME`: every rank
trains and extracts (DDP, sharded extraction), only rank 0 talks to MLflow and writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines._common import load_params, params_digest, run_stage
from pipelines._tracking import TrackingConfig, configure_tracking, file_sha256, log_curves, standard_tags
from whale_core import ConfigError, InputError, atomic_write_csv, atomic_write_json
from whale_embedder import EmbedderConfig, extract_embeddings, model_from_checkpoint, save_embeddings, train_fold
from whale_embedder import distributed as dist_utils
from whale_reid.crops import CROPS_DIR, PREPARED_DIR, check_crops, check_fold_inputs, crop_table
from whale_reid.params import EmbedderParams

log = logging.getLogger("pipelines.train_embedder")
VAL_KEYS = ("val_map5", "val_map5_known", "val_map5_new")
CURVE_KEYS = ("epoch", "val_map5", "train_loss", "lr")
RUNS_FILE = "models/embedder/{model}/runs.json"  #: fold runs, digests and per-fold details (not metrics)
#: what the parent run shows of the config (the fold runs carry all of it): one row compares models
KEY_PARAMS = ("backbone", "image_size", "embedding_dim", "epochs", "batch_size", "lr", "arcface.s", "arcface.m",
              "arcface.subcenters", "region", "extract_region", "flip_tta")  # fmt: skip


def model_config(section: dict, name: str) -> EmbedderConfig:
    """`embedder.common` overridden by `embedder.zoo.<name>` (nested sections merged key by key).

    An unknown key of `common` is named there (`embedder.common`), not in the zoo entry that inherits it.
    """
    zoo = section.get("zoo") or {}
    if name not in zoo:
        raise InputError(f"params embedder.zoo has no model '{name}' (known: {', '.join(sorted(zoo))})")
    try:
        EmbedderConfig.from_dict(section.get("common"), section="embedder.common")
    except ConfigError as err:
        if "unknown key" in str(err):
            raise
    merged = dict(section.get("common") or {})
    for key, value in (zoo[name] or {}).items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return EmbedderConfig.from_dict(merged, section=f"embedder.zoo.{name}")


def data_digest() -> str:
    """A hash of what the folds are trained on: the prepared tables and the crop boxes.

    Part of each fold's digest, so a finished fold is skipped only when params *and* data are unchanged
    (the outputs persist across `dvc repro`, so a digest of params alone would keep stale embeddings).
    """
    sha = hashlib.sha256()
    for path in (PREPARED_DIR / "train.csv", PREPARED_DIR / "test.csv", CROPS_DIR / "boxes.csv"):
        sha.update(path.read_bytes() if path.is_file() else b"-")
    return sha.hexdigest()[:12]


def recorded_run(path: Path, digest: str) -> str | None:
    """The MLflow run id recorded in `path` if it was started with the same digest (else a new run is due)."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record["run_id"] if record.get("params_digest") == digest else None


def fold_is_done(done: Path, emb_dir: Path, digest: str) -> bool:
    """Rank 0's verdict, shared with every rank: the fold finished with this digest and its embeddings exist."""
    finished = (
        dist_utils.is_main_process()
        and done.is_file()
        and json.loads(done.read_text())["params_digest"] == digest
        and (emb_dir / "test.npz").is_file()
    )
    return bool(dist_utils.broadcast_object(finished))


def run_fold(cfg, name, k, train, test, digest, tags) -> dict | None:
    """Train, embed and log fold `k`; its summary on rank 0, None on the other ranks (which write nothing)."""
    import mlflow

    fold_dir, emb_dir = Path(f"models/embedder/{name}/fold{k}"), Path(f"embeddings/{name}/fold{k}")
    done, main = fold_dir / "fold.json", dist_utils.is_main_process()
    if fold_is_done(done, emb_dir, digest):
        log.info("fold %d of %s is up to date; skipped", k, name)
        return json.loads(done.read_text()) if main else None
    run_file = fold_dir / "mlflow_run.json"
    run_id = recorded_run(run_file, digest) if main else None
    if main and run_id is None:  # checkpoints of other params/data must not be resumed
        for stale in (done, fold_dir / "last.pt", fold_dir / "best.pt"):
            stale.unlink(missing_ok=True)
    dist_utils.barrier()  # the other ranks look for last.pt only once rank 0 has removed a stale one
    is_val = train["fold"].astype(int) == k
    tracked = contextlib.nullcontext()
    if main:
        tracked = mlflow.start_run(run_id=run_id, run_name=None if run_id else f"fold{k}", nested=True)
    with tracked as run:
        if main:
            atomic_write_json(run_file, {"run_id": run.info.run_id, "params_digest": digest})
            mlflow.set_tags({**tags, "fold": str(k)})
        if main and run_id is None:
            mlflow.log_params({"fold": k, **pd.json_normalize(cfg.to_dict()).iloc[0].astype(str).to_dict()})
            log_datasets(train, is_val, k)

        def log_epoch(metrics: dict, epoch: int) -> None:
            finite = {key: v for key, v in metrics.items() if not math.isnan(v)}
            mlflow.log_metrics({key.replace("val_threshold", "threshold"): v for key, v in finite.items()}, step=epoch)

        result = train_fold(
            cfg, train[~is_val], train[is_val], out_dir=fold_dir, on_epoch_end=log_epoch if main else None
        )
        model, _ = model_from_checkpoint(result.best_path, device=cfg.device)  # where training ran
        train_emb, test_emb = extract_embeddings(model, train, cfg), extract_embeddings(model, test, cfg)
        if not main:
            return None
        save_embeddings(emb_dir / "train.npz", train["image"], train_emb)
        save_embeddings(emb_dir / "test.npz", test["image"], test_emb)
        mlflow.log_metric("cv_map5", result.metrics["val_map5"])
        curves = validated_curves(result.history)
        log_curves(curves, "epoch", list(CURVE_KEYS[1:]), f"curves/fold{k}", f"{name} fold {k}: validated epochs")
        checkpoint = {"path": str(result.best_path), "sha256": file_sha256(result.best_path),
                      "best_epoch": result.best_epoch}  # fmt: skip
        mlflow.log_dict(checkpoint, "checkpoint.json")
        mlflow.set_tag("checkpoint_sha256", checkpoint["sha256"])
        summary = {
            "cv_map5": result.metrics["val_map5"],
            "val_map5_known": _finite(result.metrics["val_map5_known"]),
            "val_map5_new": _finite(result.metrics["val_map5_new"]),
            "threshold": result.metrics["val_threshold"],
            "best_epoch": result.best_epoch,
            "run_id": run.info.run_id,
            "params_digest": digest,
            "checkpoint_sha256": checkpoint["sha256"],
            "curves": curves.to_dict(orient="records"),
        }
    atomic_write_json(done, summary)
    return summary


def log_datasets(train: pd.DataFrame, is_val: pd.Series, k: int) -> None:
    """The fold's training and validation photos as MLflow datasets (digests of the tables, no pixels)."""
    import mlflow

    columns = [c for c in ("image", "label", "species", "fold") if c in train.columns]
    for part, context in ((train[~is_val], "training"), (train[is_val], "validation")):
        with warnings.catch_warnings():  # a local path matches two equivalent source kinds; MLflow picks one
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(
                part[columns].reset_index(drop=True), source=str(PREPARED_DIR / "train.csv"), targets="label",
                name=f"fold{k}-{context}",
            )  # fmt: skip
        mlflow.log_input(dataset, context=context)


def validated_curves(history: list[dict]) -> pd.DataFrame:
    """The measured points of a fold's history: one row per validated epoch (epoch, train_loss, lr, val_map5).

    Epochs without validation have no `val_map5`; they are left out rather than drawn as 0.
    """
    rows = [{key: h.get(key) for key in CURVE_KEYS} for h in history if _finite(h.get("val_map5")) is not None]
    return pd.DataFrame(rows, columns=list(CURVE_KEYS))


def measured(fold_summary: dict) -> list[dict]:
    """A fold summary's curve points with a `val_map5` (a summary written before this rule kept every epoch)."""
    return [c for c in fold_summary["curves"] if _finite(c.get("val_map5")) is not None]


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
    mlflow.log_metrics(summary)
    curves = pd.DataFrame([{"fold": k, **c} for k, r in results.items() for c in measured(r)])
    log_curves(curves, "epoch", list(CURVE_KEYS[1:]), "curves/folds", "validated epochs, one line per fold", "fold")
    return summary


def write_oof(name: str, folds: list[int], train: pd.DataFrame) -> None:
    """`embeddings/<name>/oof.npz`: each train photo embedded by the fold checkpoint that did not train on it."""
    oof_parts = []
    for k in folds:
        emb = np.load(f"embeddings/{name}/fold{k}/train.npz", allow_pickle=False)["emb"]
        rows = np.flatnonzero(train["fold"].astype(int).to_numpy() == k)
        oof_parts.append((rows, emb[rows]))
    rows = np.concatenate([r for r, _ in oof_parts])
    save_embeddings(
        f"embeddings/{name}/oof.npz",
        train["image"].to_numpy()[rows],
        np.concatenate([e for _, e in oof_parts]),
        label=train["label"].to_numpy()[rows].astype(str),
        fold=train["fold"].astype(int).to_numpy()[rows],
    )


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def main() -> None:
    import mlflow

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="an entry of params embedder.zoo")
    name = parser.parse_args().model
    dist_utils.init_from_env()
    params = load_params()
    section = params.get("embedder") or {}
    cfg = model_config(section, name)
    folds = list(EmbedderParams.from_dict(section).folds)
    digest = params_digest(cfg.to_dict(), name, data_digest())
    train, test = crop_table("train", cfg.regions_used()), crop_table("test", cfg.regions_used())
    check_fold_inputs(train, folds)  # before any stale checkpoint is removed: a bad input fails with them intact
    check_crops(test)
    if not dist_utils.is_main_process():  # a helper rank: trains and extracts with rank 0, writes nothing
        for k in folds:
            run_fold(cfg, name, k, train, test, digest, tags={})
        dist_utils.shutdown()
        return
    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))
    tags = standard_tags("train_embedder", digest, model=name)
    parent_file = Path(f"models/embedder/{name}/mlflow_parent_run.json")
    parent_id = recorded_run(parent_file, digest)
    with mlflow.start_run(run_id=parent_id, run_name=None if parent_id else f"embedder/{name}") as parent:
        atomic_write_json(parent_file, {"run_id": parent.info.run_id, "params_digest": digest})
        mlflow.set_tags(tags)
        results = {k: run_fold(cfg, name, k, train, test, digest, tags) for k in folds}
        summary = log_parent_summary(cfg, results, new_run=parent_id is None)
    write_oof(name, folds, train)
    fold_records = {
        str(k): {key: v for key, v in r.items() if key not in ("curves", "params_digest")} for k, r in results.items()
    }
    record = {"model": name, "cv_map5": summary["cv_map5"], "folds": fold_records,
              "parent_run_id": parent.info.run_id, "params_digest": digest}  # fmt: skip
    atomic_write_json(RUNS_FILE.format(model=name), record)  # what `select` reads: the runs behind the numbers
    atomic_write_json(f"metrics/embedder/{name}.json", {key: round(v, 4) for key, v in summary.items()})
    # one series per fold, validated epochs only (dvc plots: docs/vega/fold_curves.json colours by `fold`)
    curves = pd.DataFrame([{"model": name, "fold": k, **c} for k, r in results.items() for c in measured(r)])
    atomic_write_csv(f"metrics/embedder/{name}_curves.csv", curves.reindex(columns=["model", "fold", *CURVE_KEYS]))
    log.info("%s: cv_map5 %.4f ± %.4f over folds %s", name, summary["cv_map5"], summary["cv_map5_std"], folds)
    dist_utils.shutdown()


if __name__ == "__main__":
    run_stage(main)()
