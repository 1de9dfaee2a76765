"""Region fusion: each neighbour's similarity blended from the fullbody and the backfin embeddings.

The ensemble searches on its `extract_region` (fullbody) embeddings; with `tune.region_fusion.enabled` every
neighbour found is re-scored as

    s = (1 − w_g) · s_fullbody + w_g · s_backfin,   w_g = w, or 0 when the gallery photo's species has no
                                                      usable fin (`no_fin_species`: the beluga's ridge),

and the neighbours are re-sorted by it (score fusion of the two regions; w_g = 0 leaves a pair's fullbody
similarity unchanged, so w = 0 gives exactly the fullbody answers). The backfin embeddings are the same
checkpoints' embeddings of the backfin crops (`embedder.extra_regions`, files `<split>_<region>.npz`). `w` is
chosen on the OOF retrieval (before any local-feature fusion): the grid value with the best threshold-swept
MAP@5, saved in `postprocess.json` as `region_weight` for `predict`. Only the neighbours of the fullbody search
are re-scored: a photo the fullbody ranking misses entirely is not brought back by its fin.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import REGIONS, Config, ConfigError, InputError
from whale_reid.answers.ensemble import ensemble_embeddings, stack_oof_region
from whale_retrieval import rank_individuals, sweep_thresholds
from whale_retrieval.postprocess import StackedNeighbours

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegionFusionConfig(Config):
    """params.yaml `tune.region_fusion`: fuse a second region's similarity into every neighbour's score.

    Attributes:
        enabled: off = the extract region's similarity alone (the answers before this option).
        region: the second region (its embeddings must exist: `embedder.extra_regions`).
        weights: the grid w is chosen from on the OOF retrieval.
        no_fin_species: species whose photos score by the first region alone (w_g = 0).
    """

    SECTION = "tune.region_fusion"
    RANGES = {"weights": "[0, 1]"}
    enabled: bool = False
    region: str = "backfin"
    weights: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    no_fin_species: tuple[str, ...] = ("beluga",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.region not in REGIONS:
            raise ConfigError(f"{self.SECTION}.region: {self.region!r} — choose from {list(REGIONS)}")
        if not self.weights:
            raise ConfigError(f"{self.SECTION}.weights: give at least one weight in [0, 1]")


def gallery_weights(gallery_species: Sequence[str], weight: float, no_fin_species: Sequence[str]) -> np.ndarray:
    """w_g of every gallery row: `weight`, or 0 for the species without a usable fin."""
    species = np.asarray([str(s) for s in gallery_species], dtype=object)
    return np.where(np.isin(species, list(no_fin_species)), 0.0, weight).astype(np.float32)


def neighbour_similarity(query_second: np.ndarray, gallery_second: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The second region's similarity of every (query, neighbour) pair: [n, k] (0 where idx is −1).

    Raises:
        InputError: the second region's arrays do not match the neighbours.
    """
    if len(query_second) != len(idx) or (idx.size and idx.max() >= len(gallery_second)):
        raise InputError(f"region fusion: {len(query_second)} query / {len(gallery_second)} gallery rows of the "
                         f"second region for neighbours {idx.shape}")  # fmt: skip
    second = np.einsum("nd,nkd->nk", query_second, gallery_second[np.clip(idx, 0, None)], dtype=np.float32)
    return np.where(idx >= 0, second, 0.0).astype(np.float32)


def fuse_regions(
    sims: np.ndarray, idx: np.ndarray, second: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The neighbours re-scored as (1 − w_g) · s + w_g · s_second and re-sorted (stable: ties keep their order).

    Args:
        sims, idx: [n, k] neighbours of the first region, best first (idx −1 = none).
        second: [n, k] the second region's similarity of the same pairs (`neighbour_similarity`).
        weights: w_g per gallery row (`gallery_weights`).
    """
    w = weights[np.clip(idx, 0, None)]
    fused = np.where(idx >= 0, (1 - w) * sims + w * second, -np.inf).astype(np.float32)
    order = np.argsort(-fused, axis=1, kind="stable")
    return np.take_along_axis(fused, order, axis=1), np.take_along_axis(idx, order, axis=1)


def choose_weight(
    sims: np.ndarray,
    idx: np.ndarray,
    gallery_labels: Sequence[str],
    gallery_species: Sequence[str],
    truth: Sequence[str],
    second: np.ndarray,
    cfg: RegionFusionConfig,
    thresholds: Sequence[float],
) -> tuple[float, pd.DataFrame]:
    """The grid weight with the best OOF MAP@5 (threshold swept on the similarity scale); also the table.

    Returns:
        (w, a row per weight: weight, map5, map5_known, map5_new at that weight's best threshold).
    """
    rows = []
    for weight in cfg.weights:
        w_g = gallery_weights(gallery_species, weight, cfg.no_fin_species)
        fused_sims, fused_idx = fuse_regions(sims, idx, second, w_g)
        ranked = rank_individuals(fused_sims, fused_idx, gallery_labels, 5)
        grid = sweep_thresholds(ranked, list(truth), list(thresholds))
        best = grid.loc[grid.map5.idxmax()]
        rows.append({"weight": weight, "map5": best.map5, "map5_known": best.map5_known, "map5_new": best.map5_new})
    table = pd.DataFrame(rows)
    return float(table.loc[table.map5.idxmax(), "weight"]), table


def fuse_oof_regions(
    stacked: StackedNeighbours,
    members: pd.DataFrame,
    train: pd.DataFrame,
    cfg: RegionFusionConfig,
    thresholds: Sequence[float],
    *,
    new_share: float,
    seed: int,
    root: Path,
) -> tuple[StackedNeighbours, dict | None]:
    """`tune`'s step: choose w on the OOF neighbours and return them fused, with the settings `predict` applies.

    Returns:
        (the neighbours re-scored at the chosen w, {region, weight, no_fin_species, grid} — or the neighbours
        unchanged and None when `cfg.enabled` is off).
    """
    if not cfg.enabled:
        return stacked, None
    if stacked.gallery_species is None:
        raise InputError("tune.region_fusion: needs the gallery photos' species (the train table's species column)")
    second = np.zeros_like(stacked.sims)
    row = offset = 0  # each fold's own ensemble (its members, its width), its rows of the stacked neighbours
    for query_second, gallery_second in stack_oof_region(members, train, cfg.region, new_share=new_share, seed=seed,
                                                         root=root):  # fmt: skip
        rows = slice(row, row + len(query_second))
        local = np.where(stacked.idx[rows] >= 0, stacked.idx[rows] - offset, -1)
        second[rows] = neighbour_similarity(query_second, gallery_second, local)
        row, offset = row + len(query_second), offset + len(gallery_second)
    labels, species = stacked.gallery_labels, stacked.gallery_species
    weight, table = choose_weight(stacked.sims, stacked.idx, labels, species, stacked.truth, second, cfg, thresholds)
    log.info("region fusion: %s weight %.2f (OOF MAP@5 by weight: %s)", cfg.region, weight,
             ", ".join(f"{w:.1f} {m:.3f}" for w, m in zip(table.weight, table.map5)))  # fmt: skip
    sims, idx = fuse_regions(stacked.sims, stacked.idx, second, gallery_weights(species, weight, cfg.no_fin_species))
    settings = {"region": cfg.region, "weight": weight, "no_fin_species": list(cfg.no_fin_species),
                "oof_map5_by_weight": dict(zip(map(str, table.weight), table.map5.round(4)))}  # fmt: skip
    return dataclasses.replace(stacked, sims=sims, idx=idx), settings


def fuse_query_regions(
    sims: np.ndarray, idx: np.ndarray, settings: dict, members: pd.DataFrame, queries: pd.Series,
    gallery: pd.DataFrame, root: Path,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """`predict`'s step: the test neighbours re-scored with the saved settings (`fuse_oof_regions`' dict).

    Args:
        queries: the test images; gallery: the train table (image, species) in gallery row order.
    """
    region = settings["region"]
    query_second = ensemble_embeddings(members, f"test_{region}", queries, root)
    gallery_second = ensemble_embeddings(members, f"train_{region}", gallery["image"], root)
    weights = gallery_weights(gallery["species"], float(settings["weight"]), settings["no_fin_species"])
    return fuse_regions(sims, idx, neighbour_similarity(query_second, gallery_second, idx), weights)
