"""Exact (and optionally approximate) cosine top-k search, in bounded memory, behind one `Searcher`.

Rows are validated and normed in one fp32 pass (`whale_retrieval.rows`); cosine similarity = inner
product of unit rows. `KnnConfig` picks the searcher (`whale_retrieval.searcher`): the fp32 BLAS pass
(default exact CPU search), FAISS (flat, IVF, HNSW; FAISS-GPU) or the bf16 candidate pass with an
exactness proof (`whale_retrieval.knn_bf16`). Ties are broken deterministically, lowest gallery index
first, also at the k-th position; near-ties are ordered by float64 scores (`whale_retrieval.near_ties`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from whale_core import InputError
from whale_retrieval.config import KnnConfig
from whale_retrieval.near_ties import refine_near_ties
from whale_retrieval.rows import check_embeddings
from whale_retrieval.search_faiss import build_index
from whale_retrieval.searcher import make_searcher, resolve_backend

__all__ = ["build_index", "check_embeddings", "knn_recall_at_k", "knn_search", "knn_search_allowed", "resolve_backend"]

#: (query rows, the gallery rows they may match as a boolean mask, or None = every row).
Restriction = tuple[np.ndarray, np.ndarray | None]


def knn_search(
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    k: int,
    *,
    chunk_size: int | None = None,
    config: KnnConfig | None = None,
    gallery_labels: Sequence[str] | None = None,
    n_individuals: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery rows by cosine similarity for every query row.

    Exact by default (`config.index == "flat"`): the answer equals a brute-force sort of the full
    similarity matrix by (similarity descending, gallery index ascending) — ties, including ties at
    the k-th place, go to the lowest gallery index. Neighbours whose fp32 scores are within
    `NEAR_TIE_GAP` (1e-6) of each other are ordered by float64 scores (`whale_retrieval.near_ties`).
    Memory is bounded by searching query chunks.

    Args:
        query_emb: [n_query, d] embeddings (any float dtype; normalised here).
        gallery_emb: [n_gallery, d] embeddings.
        k: neighbours per query; capped at the gallery size.
        chunk_size: query rows per chunk; default from `config.memory_budget_mb`.
        config: index type and options; default exact.
        gallery_labels: individual id of every gallery row, for searches that feed `rank_individuals`
            without a classifier. Each row then only has to be exact up to the neighbour that brings its
            `n_individuals`-th distinct individual — all that ranking the top `n_individuals` needs — and
            later slots may miss gallery rows (or hold -inf / -1). The BLAS and FAISS searchers return the
            full exact top-k anyway; the bf16 backend uses it to settle each query with a small candidate pool.
        n_individuals: distinct individuals that must be ranked exactly (with `gallery_labels`).

    Returns:
        (similarities float32 [n_query, k] in descending order, gallery indices int64 [n_query, k]).
        Approximate indexes may return fewer than k hits: those slots hold -inf and -1.

    Raises:
        InputError: bad shapes, mismatched dimensions, NaN/inf or zero-norm rows, k < 1, labels not
            matching the gallery rows.
    """
    config = config or KnnConfig()
    if k < 1:
        raise InputError(f"knn_search: k must be at least 1, got {k}")
    if gallery_labels is not None and len(gallery_labels) != len(gallery_emb):
        raise InputError(f"knn_search: {len(gallery_labels)} gallery labels for {len(gallery_emb)} gallery rows")
    query_norms = check_embeddings(query_emb, "query")
    gallery_norms = check_embeddings(gallery_emb, "gallery")
    if query_emb.shape[1] != gallery_emb.shape[1]:
        raise InputError(
            f"knn_search: query dimension {query_emb.shape[1]} differs from gallery dimension {gallery_emb.shape[1]}"
        )
    k = min(k, len(gallery_emb))
    backend = resolve_backend(
        config, len(query_emb), len(gallery_emb), query_emb.shape[1], label_aware=gallery_labels is not None
    )
    labels = None
    if gallery_labels is not None and backend == "torch_bf16":
        codes = np.unique(np.asarray([str(x) for x in gallery_labels]), return_inverse=True)[1]
        labels = (codes.reshape(-1), max(1, n_individuals))
    searcher = make_searcher(backend, gallery_emb, gallery_norms, config, chunk_size)
    sims, idx = searcher.search(query_emb, query_norms, k, labels)
    refine_near_ties(query_emb, gallery_emb, sims, idx)
    return sims, idx


def knn_search_allowed(
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    k: int,
    restrictions: Sequence[Restriction],
    *,
    config: KnnConfig | None = None,
    gallery_labels: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`knn_search` where each query may only match some gallery rows: searched on those rows, not filtered after.

    A filter after a search of the whole gallery would leave a query with fewer than k neighbours (none, when
    its k nearest are all barred); here each restriction's queries are searched — exactly as `knn_search`
    searches, in one call per restriction — against its allowed rows only.

    Args:
        restrictions: (query rows, allowed gallery mask or None = all), each query row in one of them.
        gallery_labels: as in `knn_search` (passed on for the allowed rows).

    Returns:
        (similarities [n, min(k, n_gallery)], whole-gallery indices), best first; a query allowed fewer than
        k rows has -inf / -1 in its remaining slots (all of them when it is allowed none).
    """
    if k < 1:
        raise InputError(f"knn_search: k must be at least 1, got {k}")
    k = min(k, len(gallery_emb))
    sims, idx = np.full((len(query_emb), k), -np.inf, np.float32), np.full((len(query_emb), k), -1, np.int64)
    labels = None if gallery_labels is None else np.asarray([str(x) for x in gallery_labels], dtype=object)
    for rows, allowed in restrictions:
        sub = np.arange(len(gallery_emb)) if allowed is None else np.flatnonzero(allowed)
        width = min(k, len(sub))
        if width == 0 or len(rows) == 0:
            continue  # nothing allowed: no neighbours
        part_gallery = gallery_emb if allowed is None else gallery_emb[sub]
        part_labels = None if labels is None else labels[sub]
        found_sims, found = knn_search(query_emb[rows], part_gallery, width, config=config, gallery_labels=part_labels)
        sims[rows, :width], idx[rows, :width] = found_sims, np.where(found >= 0, sub[np.clip(found, 0, None)], -1)
    return sims, idx


def knn_recall_at_k(
    query_emb: np.ndarray, gallery_emb: np.ndarray, k: int, config: KnnConfig, *, chunk_size: int | None = None
) -> float:
    """Share of the exact top-k neighbours that the index of `config` also returns (1.0 = exact).

    Run it on a sample of queries before trusting an IVF/HNSW index on a big gallery.
    """
    _, exact_idx = knn_search(query_emb, gallery_emb, k, chunk_size=chunk_size)
    _, approx_idx = knn_search(query_emb, gallery_emb, k, chunk_size=chunk_size, config=config)
    found = sum(np.intersect1d(e, a[a >= 0]).size for e, a in zip(exact_idx, approx_idx))
    return found / exact_idx.size
