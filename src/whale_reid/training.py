"""Training every CV fold of one zoo model: skip, resume or start each fold, embed, log to MLflow, write.

A finished fold (same params and data digest) is skipped; an interrupted one resumes from its last
checkpoint and continues its MLflow run (ids in `mlflow_run.json` beside the checkpoints); a fold or
model whose digest changed starts afresh with new runs. Runs unchanged under torchrun: every rank trains
and extracts (DDP, sharded extraction), only rank 0 talks to MLflow and writes files — it also decides
whether a fold is done and removes stale checkpoints before the other ranks look for one to resume from.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from whale_core import atomic_write_json, file_sha256
from whale_embedder import EmbedderConfig, extract_embeddings, model_from_checkpoint, save_embeddings, train_fold
from whale_embedder import distributed as dist_utils
from whale_reid.crops import check_crops, check_fold_inputs, crop_table
from whale_reid.params import EmbedderParams
from whale_reid.region_fusion import extract_extra_regions
from whale_reid.tracking import (
    TrackingConfig,
    configure_tracking,
    log_curves,
    params_digest,
    standard_tags,
)
from whale_reid.training_records import (
    CURVE_KEYS,
    finite,
    log_parent_summary,
    validated_curves,
    write_model_records,
    write_oof,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPaths:
    """Where one model's training reads and writes (each named by the stage's `cmd:` in dvc.yaml).

    Attributes:
        prepared: the prepared tables (`train.csv`, `test.csv`).
        crops: the crop stage's folder (`<region>/<split>/<image>.jpg`, `boxes.csv`).
        model_dir: `fold<k>/{best,last}.pt`, the run records and `runs.json`.
        embeddings: `fold<k>/{train,test}.npz` and `oof.npz`.
        metrics: the model's DVC metrics file (CV MAP@5: mean, std, per fold).
        curves: its validated epochs, a row per fold and epoch (a DVC plot).
    """

    prepared: Path
    crops: Path
    model_dir: Path
    embeddings: Path
    metrics: Path
    curves: Path

    def data_digest(self) -> str:
        """A hash of what the folds are trained on: the prepared tables and the crop boxes.

        Part of each fold's digest, so a finished fold is skipped only when params *and* data are unchanged
        (the outputs persist across `dvc repro`, so a digest of params alone would keep stale embeddings).
        """
        sha = hashlib.sha256()
        for path in (self.prepared / "train.csv", self.prepared / "test.csv", self.crops / "boxes.csv"):
            sha.update(path.read_bytes() if path.is_file() else b"-")
        return sha.hexdigest()[:12]


@dataclass(frozen=True)
class FoldJob:
    """One fold of one model to train: what it trains on, where it writes, and what its runs are tagged with.

    Attributes:
        cfg: the model's merged embedder config.
        name: the model's name (an `embedder.zoo` entry).
        fold: the fold held out for validation.
        train: the train crop table (every fold; `fold` says which rows validate).
        test: the test crop table (embedded by the fold's best checkpoint).
        digest: params + data digest; a fold finished or started with another digest is redone.
        paths: the model's folders.
        tags: MLflow tags of the fold run (empty on helper ranks, which do not log).
        source: the table the photos come from (named in the MLflow datasets).
    """

    cfg: EmbedderConfig
    name: str
    fold: int
    train: pd.DataFrame
    test: pd.DataFrame
    digest: str
    paths: TrainingPaths
    tags: dict[str, str]
    source: str

    @property
    def fold_dir(self) -> Path:
        return self.paths.model_dir / f"fold{self.fold}"

    @property
    def emb_dir(self) -> Path:
        return self.paths.embeddings / f"fold{self.fold}"

    @property
    def is_val(self) -> pd.Series:
        return self.train["fold"].astype(int) == self.fold


def recorded_run(path: Path, digest: str) -> str | None:
    """The MLflow run id recorded in `path` if it was started with the same digest (else a new run is due)."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record["run_id"] if record.get("params_digest") == digest else None


def fold_is_done(job: FoldJob) -> bool:
    """Rank 0's verdict, shared with every rank: the fold finished with this digest and its embeddings exist."""
    done = job.fold_dir / "fold.json"
    finished = (
        dist_utils.is_main_process()
        and done.is_file()
        and json.loads(done.read_text())["params_digest"] == job.digest
        and (job.emb_dir / "test.npz").is_file()
    )
    return bool(dist_utils.broadcast_object(finished))


def _resumable_run(job: FoldJob) -> str | None:
    """Rank 0: the fold's MLflow run to continue, after removing checkpoints of other params/data (then a barrier)."""
    run_id = None
    if dist_utils.is_main_process():
        run_id = recorded_run(job.fold_dir / "mlflow_run.json", job.digest)
        if run_id is None:  # checkpoints of other params/data must not be resumed
            for stale in ("fold.json", "last.pt", "best.pt"):
                (job.fold_dir / stale).unlink(missing_ok=True)
    dist_utils.barrier()  # the other ranks look for last.pt only once rank 0 has removed a stale one
    return run_id


def run_fold(job: FoldJob) -> dict | None:
    """Train, embed and log one fold; its summary on rank 0, None on the other ranks (which write nothing)."""
    import mlflow

    done, main = job.fold_dir / "fold.json", dist_utils.is_main_process()
    if fold_is_done(job):
        log.info("fold %d of %s is up to date; skipped", job.fold, job.name)
        return json.loads(done.read_text()) if main else None
    run_id = _resumable_run(job)
    tracked = contextlib.nullcontext()
    if main:
        tracked = mlflow.start_run(run_id=run_id, run_name=None if run_id else f"fold{job.fold}", nested=True)
    with tracked as run:
        if main:
            atomic_write_json(
                job.fold_dir / "mlflow_run.json", {"run_id": run.info.run_id, "params_digest": job.digest}
            )
            mlflow.set_tags({**job.tags, "fold": str(job.fold)})
        if main and run_id is None:
            flat = pd.json_normalize(job.cfg.to_dict()).iloc[0].astype(str).to_dict()
            mlflow.log_params({"fold": job.fold, **flat})
            log_datasets(job)
        result = train_fold(job.cfg, job.train[~job.is_val], job.train[job.is_val], out_dir=job.fold_dir,
                            on_epoch_end=_log_epoch if main else None)  # fmt: skip
        model, _ = model_from_checkpoint(result.best_path, device=job.cfg.device)  # where training ran
        train_emb, test_emb = (
            extract_embeddings(model, job.train, job.cfg),
            extract_embeddings(model, job.test, job.cfg),
        )
        if not main:
            return None
        save_embeddings(job.emb_dir / "train.npz", job.train["image"], train_emb)
        save_embeddings(job.emb_dir / "test.npz", job.test["image"], test_emb)
        summary = _log_fold_result(job, result, run.info.run_id)
    atomic_write_json(done, summary)
    return summary


def _log_epoch(metrics: dict, epoch: int) -> None:
    import mlflow

    finite = {key: v for key, v in metrics.items() if not math.isnan(v)}
    mlflow.log_metrics({key.replace("val_threshold", "threshold"): v for key, v in finite.items()}, step=epoch)


def _log_fold_result(job: FoldJob, result, run_id: str) -> dict:
    """The fold run's score, curves and checkpoint digest in MLflow; the fold summary `fold.json` keeps."""
    import mlflow

    mlflow.log_metric("cv_map5", result.metrics["val_map5"])
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


def train_model(
    embedder: EmbedderParams,
    tracking: TrackingConfig,
    name: str,
    paths: TrainingPaths,
    pseudo: pd.DataFrame | None = None,
    run_name: str | None = None,
) -> dict | None:
    """Train, embed and record every configured fold of model `name` (the `train_embedder` stage's work).

    Inputs are checked before any stale checkpoint is removed, so a bad input fails with them intact.
    Call `whale_embedder.distributed.init_from_env()` first under torchrun.

    Args:
        pseudo: extra labelled test photos (`image`, `individual_id`, `species`; a `pseudo_round`'s picks): every
            fold trains on them (fold -1: never validated, never in the OOF embeddings) and embeds them with the
            train photos; their crops are the test split's.
        run_name: the model's MLflow run (default `embedder/<name>`); nested when a run is active.

    Returns:
        On rank 0 the model's CV summary (`cv_map5`, `cv_map5_std`, `cv_map5_fold<k>`); None on other ranks.
    """
    import mlflow

    cfg, folds = embedder.model_config(name), list(embedder.folds)
    digest = params_digest(cfg.to_dict(), name, paths.data_digest())
    regions = tuple(dict.fromkeys((*cfg.regions_used(), *embedder.extra_regions)))
    tables = [crop_table(split, regions, prepared_dir=paths.prepared, crops_dir=paths.crops)
              for split in ("train", "test")]  # fmt: skip
    if pseudo is not None and len(pseudo):
        extra = crop_table("test", regions, prepared_dir=paths.prepared, crops_dir=paths.crops)
        extra = extra[["image", *[c for c in extra.columns if c.startswith("path_")]]].merge(
            pseudo.rename(columns={"individual_id": "label"})[["image", "label", "species"]], on="image"
        )
        tables[0] = pd.concat([tables[0], extra.assign(fold="-1")], ignore_index=True)
        digest = params_digest(digest, pseudo[["image", "individual_id"]].to_dict(orient="records"))
    check_fold_inputs(tables[0], folds, paths.prepared / "train.csv")
    check_crops(tables[1])

    def job(k: int, tags: dict[str, str]) -> FoldJob:
        return FoldJob(cfg, name, k, *tables, digest, paths, tags, str(paths.prepared / "train.csv"))

    if not dist_utils.is_main_process():  # a helper rank: trains and extracts with rank 0, writes nothing
        for k in folds:
            run_fold(job(k, {}))
            extract_extra_regions(job(k, {}), embedder.extra_regions)
        return None
    configure_tracking(tracking)
    tags = standard_tags("train_embedder", digest, model=name)
    parent_file = paths.model_dir / "mlflow_parent_run.json"
    parent_id = recorded_run(parent_file, digest)
    nested = mlflow.active_run() is not None  # under a pseudo-label round's run
    with mlflow.start_run(
        run_id=parent_id, run_name=None if parent_id else run_name or f"embedder/{name}", nested=nested
    ) as parent:
        atomic_write_json(parent_file, {"run_id": parent.info.run_id, "params_digest": digest})
        mlflow.set_tags(tags)
        results = {k: run_fold(job(k, tags)) for k in folds}
        for k in folds:
            extract_extra_regions(job(k, tags), embedder.extra_regions)
        summary = log_parent_summary(cfg, results, new_run=parent_id is None)
    write_oof(paths.embeddings, folds, tables[0])
    write_model_records(paths, name, results, summary, parent.info.run_id, digest)
    return summary
