"""Embeddings of a fold's other regions (`embedder.extra_regions`, e.g. the backfin crops for region fusion).

Made from the fold's best checkpoint once per checkpoint, so turning region fusion on embeds the backfin crops of
finished folds without retraining them (`whale_reid.answers.region_fusion` scores with them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from whale_embedder import distributed as dist_utils
from whale_embedder import extract_embeddings, model_from_checkpoint, save_embeddings
from whale_reid.training.fold_job import FoldJob

log = logging.getLogger(__name__)


def stale_extra_regions(job: FoldJob, regions: Sequence[str]) -> list[str]:
    """The regions whose embeddings of the fold's best checkpoint are missing or older than it (rank 0 decides).

    Made once per checkpoint, so turning region fusion on embeds the backfin crops of finished folds without
    retraining them.
    """
    best = job.fold_dir / "best.pt"
    outputs = {r: [job.emb_dir / f"{split}_{r}.npz" for split in ("train", "test")] for r in regions}
    return [r for r, files in outputs.items() if r != job.cfg.extract_region
            and not all(f.is_file() and f.stat().st_mtime >= best.stat().st_mtime for f in files)]  # fmt: skip


def extract_extra_regions(job: FoldJob, todo: Sequence[str]) -> None:
    """The fold's best checkpoint's embeddings of the regions `todo`: `fold<k>/<split>_<region>.npz`.

    Under torchrun a collective: every rank must call it with the same `todo` (rank 0's `stale_extra_regions`,
    shared by `whale_reid.training.jobs.plan_folds`); rank 0 writes the files.
    """
    if not todo:
        return
    model, _ = model_from_checkpoint(job.fold_dir / "best.pt", device=job.cfg.device)
    for region in todo:
        cfg = job.cfg.replace(extract_region=region)
        train_emb, test_emb = extract_embeddings(model, job.train, cfg), extract_embeddings(model, job.test, cfg)
        if dist_utils.is_main_process():
            save_embeddings(job.emb_dir / f"train_{region}.npz", job.train["image"], train_emb)
            save_embeddings(job.emb_dir / f"test_{region}.npz", job.test["image"], test_emb)
    log.info("fold %d of %s: embedded the %s crops too", job.fold, job.name, ", ".join(todo))
