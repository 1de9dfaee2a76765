"""Each fold of one model: skip, resume or start it, embed, log to MLflow, write (`run_fold`).

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
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from whale_core import atomic_write_json
from whale_embedder import distributed as dist_utils
from whale_embedder import extract_embeddings, model_from_checkpoint, save_embeddings, train_fold
from whale_reid.training.extra_regions import stale_extra_regions
from whale_reid.training.fold_job import FoldJob
from whale_reid.training.records import log_datasets, log_epoch, log_fold_result

log = logging.getLogger(__name__)


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
