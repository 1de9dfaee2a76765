"""Out-of-fold retrieval over several (query, gallery) splits, and applying tuned post-processing.

Cross-validation gives one retrieval problem per fold — that fold's photos against the others,
embedded by the checkpoints that never trained on that fold — so the galleries differ. `stack_splits`
searches each split once and stacks the neighbours with gallery indices offset into one concatenated
label array: everything downstream (ranking, thresholds, MAP@5, tuning) then sees a single problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from whale_core import Config, InputError
from whale_retrieval.config import KnnConfig
from whale_retrieval.knn import Restriction, knn_search, knn_search_allowed
from whale_retrieval.metrics import NEW_INDIVIDUAL
from whale_retrieval.ranking import RankedIndividuals
from whale_retrieval.thresholds import query_species, species_thresholds, threshold_for_new_share


@dataclasses.dataclass(frozen=True)
class RetrievalSplit:
    """One retrieval problem: queries with their true ids against a labelled gallery.

    Attributes:
        restrictions: (query rows, allowed gallery mask or None) covering every query row, when queries may
            match only part of the gallery (`knn_search_allowed`, e.g. photos of the same side); None = all.
    """

    query_emb: np.ndarray
    query_labels: Sequence[str]
    gallery_emb: np.ndarray
    gallery_labels: Sequence[str]
    gallery_species: Sequence[str] | None = None
    gallery_images: Sequence[str] | None = None
    restrictions: Sequence[Restriction] | None = None


@dataclasses.dataclass(frozen=True)
class StackedNeighbours:
    """Neighbours of every split's queries, indices into the concatenated gallery arrays.

    Attributes:
        truth: each query's id, or `new_individual` when absent from its own split's gallery.
        gallery_images: image id of every stacked gallery row, when every split gave them (the local
            evidence of a pair is looked up by image).
    """

    sims: np.ndarray
    idx: np.ndarray
    gallery_labels: np.ndarray
    gallery_species: np.ndarray | None
    truth: list[str]
    gallery_images: np.ndarray | None = None


def split_truth(
    query_labels: Sequence[str], gallery_labels: Sequence[str], restrictions: Sequence[Restriction] | None
) -> list[str]:
    """Each query's id, or `new_individual` when none of the gallery rows it may match shows that individual."""
    truth = [str(label) for label in query_labels]
    labels = np.asarray(gallery_labels, dtype=object)
    for rows, allowed in restrictions or [(np.arange(len(truth)), None)]:
        known = set(labels.tolist() if allowed is None else labels[allowed].tolist())
        for row in np.asarray(rows).tolist():
            truth[row] = truth[row] if truth[row] in known else NEW_INDIVIDUAL
    return truth


def stack_splits(splits: Sequence[RetrievalSplit], k: int, knn_config: KnnConfig | None = None) -> StackedNeighbours:
    """kNN per split (k capped by the smallest gallery), stacked with offset gallery indices.

    A split with `restrictions` searches each query on its allowed rows only; its query is `new_individual`
    in `truth` when those rows do not show its individual (the answer the restricted search should give).
    """
    if not splits:
        raise InputError("no retrieval splits to stack")
    k = min(k, *(len(s.gallery_emb) for s in splits))
    sims, idx, labels, species, images, truth = [], [], [], [], [], []
    offset = 0
    with_species = all(s.gallery_species is not None for s in splits)
    with_images = all(s.gallery_images is not None for s in splits)
    for number, split in enumerate(splits):
        if len(split.query_labels) != len(split.query_emb):
            raise InputError(f"split {number}: {len(split.query_labels)} query labels for {len(split.query_emb)} rows")
        if len(split.gallery_labels) != len(split.gallery_emb):
            raise InputError(
                f"split {number}: {len(split.gallery_labels)} gallery labels for {len(split.gallery_emb)} rows"
            )
        if split.restrictions is None:
            split_sims, split_idx = knn_search(split.query_emb, split.gallery_emb, k, config=knn_config)
        else:
            split_sims, split_idx = knn_search_allowed(
                split.query_emb, split.gallery_emb, k, split.restrictions, config=knn_config
            )
        sims.append(split_sims)
        idx.append(np.where(split_idx >= 0, split_idx + offset, -1))  # -1 (no neighbour) stays -1
        gallery_labels = [str(x) for x in split.gallery_labels]
        labels.extend(gallery_labels)
        if with_species:
            species.extend(str(x) for x in split.gallery_species)
        if with_images:
            images.extend(str(x) for x in split.gallery_images)
        truth.extend(split_truth(split.query_labels, gallery_labels, split.restrictions))
        offset += len(split.gallery_emb)
    return StackedNeighbours(
        sims=np.concatenate(sims),
        idx=np.concatenate(idx),
        gallery_labels=np.asarray(labels, dtype=str),
        gallery_species=np.asarray(species, dtype=str) if with_species else None,
        truth=truth,
        gallery_images=np.asarray(images, dtype=str) if with_images else None,
    )


@dataclasses.dataclass(frozen=True)
class PostProcessing(Config):
    """Tuned knobs that turn ranked individuals into five answers (part of `outputs/postprocess.json`).

    Attributes:
        threshold: global threshold for `new_individual`, on the scale of the scores it is applied to
            (cosine similarity, or P(same individual) when local evidence is fused — see `AnswerRule`).
        k_neighbors: neighbours used for ranking.
        species_offsets: per-species threshold offsets (query species = top-1 neighbour's species).
        new_share: target-share mode (the 1st place's rule) when set: a batch of at least
            `SHARE_MIN_QUERIES` queries gets the global threshold that gives this share of them
            `new_individual` first (`threshold_for_new_share`; species offsets still add to it), so the
            decision follows the batch's own score scale instead of the OOF one. Smaller batches (one photo
            in `whale-reid identify`) fall back to `threshold`. None: `threshold` always.
        blend_weight: w of the kNN + classifier blend (`rank_individuals`): each individual scores
            (1 - w) · its neighbour score + w · the ArcFace head's cosine; 0 = neighbours alone.
    """

    SECTION = "postprocess"
    RANGES = {
        "threshold": "[-1.1, 1.1]",  # cosine similarity's [-1, 1] widened by `answers.THRESHOLD_SLACK`
        "k_neighbors": ">= 1",
        "species_offsets": "[-1, 1]",
        "new_share": "[0, 1]",
        "blend_weight": "[0, 1]",
    }
    SHARE_MIN_QUERIES: ClassVar[int] = 20
    threshold: float = 0.5
    k_neighbors: int = 50
    species_offsets: dict[str, float] = dataclasses.field(default_factory=dict)
    new_share: float | None = None
    blend_weight: float = 0.0

    @classmethod
    def from_best_params(cls, best_params: Mapping[str, Any], default_k: int) -> PostProcessing:
        """From `TuneResult.best_params` (keys threshold, k_neighbors, offset_<species>, blend_weight)."""
        offsets = {k.removeprefix("offset_"): float(v) for k, v in best_params.items() if k.startswith("offset_")}
        k = int(best_params.get("k_neighbors", default_k))
        return cls(float(best_params["threshold"]), k, offsets, blend_weight=float(best_params.get("blend_weight", 0)))

    def base_threshold(self, ranked: RankedIndividuals) -> float:
        """The global threshold for this batch: from `new_share` when set and the batch is large enough."""
        if self.new_share is None or len(ranked) < self.SHARE_MIN_QUERIES:
            return self.threshold
        return threshold_for_new_share(ranked, self.new_share)

    def thresholds(
        self, idx: np.ndarray, gallery_species: Sequence[str] | None, base: float | None = None
    ) -> float | np.ndarray:
        """The threshold of each query: `base` (default `threshold`) plus its species' offset."""
        base = self.threshold if base is None else base
        if not self.species_offsets or gallery_species is None:
            return base
        return species_thresholds(query_species(idx, gallery_species, 1), base, self.species_offsets)
