"""Embeddings in, five answers per query out: kNN → individuals → `new_individual` insertion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from whale_core import InputError
from whale_retrieval.config import KnnConfig
from whale_retrieval.knn import knn_search
from whale_retrieval.ranking import most_frequent_ids, rank_individuals
from whale_retrieval.thresholds import insert_new_individual

#: Neighbours per query by default: the individuals' best matches need only enough to cover five
#: distinct individuals; 100 leaves room for galleries with many photos per individual.
DEFAULT_K_NEIGHBORS = 100


def predict_top5(
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    gallery_labels: Sequence[str],
    threshold: float | np.ndarray,
    *,
    k_neighbors: int = DEFAULT_K_NEIGHBORS,
    knn_config: KnnConfig | None = None,
    classifier_logits: np.ndarray | None = None,
    classifier_labels: Sequence[str] | None = None,
    blend_weight: float = 0.0,
    chunk_size: int | None = None,
) -> list[list[str]]:
    """Five distinct answers per query (best first), `new_individual` where similarity drops below threshold.

    Padding (queries with fewer than five candidates) uses the gallery's most frequent individuals.

    Raises:
        InputError: labels not matching the gallery rows, or any `knn_search` input error.
    """
    if len(gallery_labels) != len(gallery_emb):
        raise InputError(f"predict_top5: {len(gallery_labels)} gallery labels for {len(gallery_emb)} gallery rows")
    blended = classifier_logits is not None and blend_weight != 0.0
    labels = None if blended else gallery_labels  # without a classifier, ranking needs only the top 5 exact
    sims, idx = knn_search(
        query_emb, gallery_emb, k_neighbors, chunk_size=chunk_size, config=knn_config, gallery_labels=labels
    )
    ranked = rank_individuals(
        sims,
        idx,
        gallery_labels,
        5,
        classifier_logits=classifier_logits,
        classifier_labels=classifier_labels,
        blend_weight=blend_weight,
    )
    return insert_new_individual(ranked, threshold, 5, pad_ids=most_frequent_ids(gallery_labels, 6))
