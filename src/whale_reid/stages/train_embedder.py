"""Stage `train_embedder`: train, embed and record every CV fold of one zoo model (`train_model`).

The folds themselves are `whale_reid.training`'s: `plan_folds` (rank 0 decides, every rank follows), `run_fold`
(train, embed, log) and the records each fold and the model leave behind.
"""

from __future__ import annotations

import contextlib
import logging

import pandas as pd

from whale_core import InputError, atomic_write_json
from whale_embedder import distributed as dist_utils
from whale_reid.common.params import EmbedderParams
from whale_reid.common.tracking import TrackingConfig, configure_tracking, params_digest, standard_tags
from whale_reid.dataset.crops import check_crops, check_fold_inputs, crop_table
from whale_reid.training.extra_regions import extract_extra_regions
from whale_reid.training.fold_job import FoldJob, TrainingPaths
from whale_reid.training.jobs import plan_folds, recorded_run, run_fold
from whale_reid.training.records import log_parent_summary, write_model_records, write_oof

log = logging.getLogger(__name__)


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
