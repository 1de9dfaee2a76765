"""Training every CV fold of one zoo model: skip, resume or start each fold, embed, log to MLflow, write.

A finished fold (same params and data digest) is skipped; an interrupted one resumes from its last
checkpoint and continues its MLflow run (ids in `mlflow_run.json` beside the checkpoints); a fold or
model whose digest changed starts afresh with new runs. Runs unchanged under torchrun: every rank trains
and extracts (DDP, sharded extraction), only rank 0 talks to MLflow and writes files. Rank 0 also decides what
is left to do (`plan_folds`: which folds to train, which extra regions to embed) and broadcasts it, so every rank
takes the same steps — each a collective — in the same order; it removes stale checkpoints before the other ranks
look for one to resume from.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from whale_core import InputError, atomic_write_json
from whale_embedder import EmbedderConfig, extract_embeddings, model_from_checkpoint, save_embeddings, train_fold
from whale_embedder import distributed as dist_utils
from whale_reid.answers.region_fusion import extract_extra_regions, stale_extra_regions
from whale_reid.common.params import EmbedderParams
from whale_reid.common.tracking import (
    TrackingConfig,
    configure_tracking,
    params_digest,
    standard_tags,
)
from whale_reid.dataset.crops import check_crops, check_fold_inputs, crop_table
from whale_reid.training.records import (
    log_datasets,
    log_epoch,
    log_fold_result,
    log_parent_summary,
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
        digest: digest of the params that decide the weights (`EmbedderConfig.result_dict`: not workers, device,
            eval batch or validation cadence) and the data; a fold finished or started with another one is redone.
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
    """Rank 0's view: the fold finished with this digest and its embeddings exist (`plan_folds` shares it)."""
    done = job.fold_dir / "fold.json"
    return (
        done.is_file()
        and json.loads(done.read_text())["params_digest"] == job.digest
        and (job.emb_dir / "test.npz").is_file()
    )


@dataclass(frozen=True)
class FoldPlan:
    """What is left to do for one fold, decided by rank 0 and the same on every rank.

    Every step of a fold that is done at all is a collective under torchrun (DDP training, sharded extraction),
    so each rank must take the same steps in the same order: a rank that trained fold 1 while another embedded
    fold 0's extra regions would wait forever in a different collective.

    Attributes:
        fold: the fold.
        train: train (or resume) it; False when it finished with this digest.
        extra_regions: regions its best checkpoint embeds afterwards (`region_fusion.extract_extra_regions`).
    """

    fold: int
    train: bool
    extra_regions: tuple[str, ...]


def plan_folds(jobs: list[FoldJob], extra_regions: Sequence[str]) -> list[FoldPlan]:
    """Rank 0 looks at the files once and every rank receives its plan (a collective).

    A fold to train gets all its extra regions (its new `best.pt` outdates them); a finished one only those
    whose embeddings are missing or older than its `best.pt`.
    """
    plans = None
    if dist_utils.is_main_process():
        plans = []
        for job in jobs:
            train = not fold_is_done(job)
            regions = [r for r in extra_regions if r != job.cfg.extract_region]
            plans.append(FoldPlan(job.fold, train, tuple(regions if train else stale_extra_regions(job, regions))))
    return dist_utils.broadcast_object(plans)


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


def run_fold(job: FoldJob, train: bool = True) -> dict | None:
    """Train, embed and log one fold; its summary on rank 0, None on the other ranks (which write nothing).

    Args:
        train: rank 0's verdict shared by every rank (`FoldPlan.train`); False reads the finished fold's summary.
    """
    import mlflow

    done, main = job.fold_dir / "fold.json", dist_utils.is_main_process()
    if not train:
        log.info("fold %d of %s is up to date; skipped", job.fold, job.name)
        return json.loads(done.read_text()) if main else None
    log.info("fold %d of %s: training on %d photos, validating on %d", job.fold, job.name,
             int((~job.is_val).sum()), int(job.is_val.sum()))  # fmt: skip
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
                            on_epoch_end=log_epoch if main else None)  # fmt: skip
        model, _ = model_from_checkpoint(result.best_path, device=job.cfg.device)  # where training ran
        train_emb, test_emb = (
            extract_embeddings(model, job.train, job.cfg),
            extract_embeddings(model, job.test, job.cfg),
        )
        if not main:
            return None
        save_embeddings(job.emb_dir / "train.npz", job.train["image"], train_emb)
        save_embeddings(job.emb_dir / "test.npz", job.test["image"], test_emb)
        summary = log_fold_result(job, result, run.info.run_id)
    atomic_write_json(done, summary)
    return summary


def _configure_tracking_everywhere(tracking: TrackingConfig) -> None:
    """Rank 0 points MLflow at its store; an unreachable server stops every rank with rank 0's message (a helper
    rank never waits in a collective that rank 0, stopped, will not join)."""
    error = None
    if dist_utils.is_main_process():
        try:
            configure_tracking(tracking)
        except InputError as err:
            error = str(err)
    error = dist_utils.broadcast_object(error)
    if error is not None:
        raise InputError(error)


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
    digest = params_digest(cfg.result_dict(), name, paths.data_digest())  # workers, device, ... keep finished folds
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

    main = dist_utils.is_main_process()
    _configure_tracking_everywhere(tracking)
    plans = plan_folds([job(k, {}) for k in folds], embedder.extra_regions)
    tags = standard_tags("train_embedder", digest, model=name) if main else {}
    parent_id, tracked = None, contextlib.nullcontext()
    if main:
        parent_id = recorded_run(paths.model_dir / "mlflow_parent_run.json", digest)
        nested = mlflow.active_run() is not None  # under a pseudo-label round's run
        tracked = mlflow.start_run(
            run_id=parent_id, run_name=None if parent_id else run_name or f"embedder/{name}", nested=nested
        )
    with tracked as parent:
        if main:
            atomic_write_json(
                paths.model_dir / "mlflow_parent_run.json", {"run_id": parent.info.run_id, "params_digest": digest}
            )
            mlflow.set_tags(tags)
        results = {}
        for plan in plans:  # every rank: the same folds, steps and collectives, in the same order
            results[plan.fold] = run_fold(job(plan.fold, tags), train=plan.train)
            extract_extra_regions(job(plan.fold, tags), plan.extra_regions)
        if not main:  # a helper rank: trained and extracted with rank 0, writes nothing
            return None
        summary = log_parent_summary(cfg, results, new_run=parent_id is None)
    write_oof(paths.embeddings, folds, tables[0])
    write_model_records(paths, name, results, summary, parent.info.run_id, digest)
    return summary
