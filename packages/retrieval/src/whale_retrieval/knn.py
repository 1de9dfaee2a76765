"""Exact (and optionally approximate) cosine top-k search with FAISS, in bounded memory.

Rows are L2-normalised here (cosine similarity = inner product of unit vectors). The exact path is
FAISS `IndexFlatIP` over query chunks, or for large searches a bf16 candidate pass with torch whose
candidates are re-scored in fp32 and proven complete (`whale_retrieval.knn_bf16`); ties are broken
deterministically, lowest gallery index first, also at the k-th position (rows with a tie or near-tie
there are re-solved from the full float64 similarity row).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faiss
import numpy as np

from whale_core import InputError
from whale_retrieval._blocks import chunks, norm_chunk_rows
from whale_retrieval.config import KnnConfig
from whale_retrieval.near_ties import NEAR_TIE_GAP, exact_top_k_float64, refine_near_ties

log = logging.getLogger(__name__)


#: `backend="auto"` uses the bf16 pass from this many multiply-adds (query rows × gallery rows × dim) on.
_AUTO_BF16_MIN_MACS = 2 * 10**10


def check_embeddings(emb: np.ndarray, name: str) -> np.ndarray:
    """Validate a [n, d] embedding matrix and return its row norms (float64).

    Raises:
        InputError: not 2-D, no columns, NaN/inf values or zero-norm rows; the message names `name`
            ("query"/"gallery"), how many rows and the first few row indices.
    """
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.shape[1] == 0:
        raise InputError(f"{name} embeddings: expected a 2-D [n, d] array with d > 0, got shape {emb.shape}")
    if not np.issubdtype(emb.dtype, np.number):
        raise InputError(f"{name} embeddings: expected numbers, got dtype {emb.dtype}")
    norms = np.empty(emb.shape[0], dtype=np.float64)
    for start, stop in chunks(emb.shape[0], norm_chunk_rows(emb.shape[1])):
        block = emb[start:stop].astype(np.float64)
        norms[start:stop] = np.sqrt(np.einsum("ij,ij->i", block, block))
    for bad, what in ((~np.isfinite(norms), "contain NaN or inf"), (norms == 0.0, "have zero norm")):
        rows = np.flatnonzero(bad)
        if rows.size:
            first = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
            raise InputError(f"{name} embeddings: {rows.size} row(s) {what} (rows {first})")
    return norms


def _normalised(emb: np.ndarray, norms: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows start:stop divided by their norms (in float64, block by block), as contiguous float32."""
    out = np.empty((stop - start, emb.shape[1]), dtype=np.float32)
    for begin, end in chunks(stop - start, norm_chunk_rows(emb.shape[1])):
        rows = slice(start + begin, start + end)
        np.divide(emb[rows], norms[rows, None], out=out[begin:end], casting="unsafe")
    return out


def build_index(gallery_emb: np.ndarray, config: KnnConfig | None = None) -> faiss.Index:
    """A FAISS inner-product index over the L2-normalised gallery, filled chunk by chunk."""
    config = config or KnnConfig()
    norms = check_embeddings(gallery_emb, "gallery")
    n, dim = gallery_emb.shape
    if config.index == "flat":
        index = faiss.IndexFlatIP(dim)
    elif config.index == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = config.hnsw_ef_search
    else:
        nlist = max(1, min(config.ivf_nlist, n // 39))  # faiss wants ≥ 39 training points per cell
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(config.seed).choice(n, size=min(n, nlist * 256), replace=False)
        index.train(np.ascontiguousarray((gallery_emb[np.sort(sample)] / norms[np.sort(sample), None]), np.float32))
        index.nprobe = min(config.ivf_nprobe, nlist)
    for start, stop in chunks(n, norm_chunk_rows(dim)):
        index.add(_normalised(gallery_emb, norms, start, stop))
    return _maybe_to_gpu(index, config)


def _maybe_to_gpu(index: faiss.Index, config: KnnConfig) -> faiss.Index:
    if not config.use_gpu:
        return index
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        log.warning("knn.use_gpu is set but faiss has no GPU here; searching on the CPU")
        return index
    return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)


def resolve_backend(config: KnnConfig, n_query: int, n_gallery: int, dim: int, *, label_aware: bool = False) -> str:
    """The backend an exact search of this size runs on: "faiss" or "torch_bf16" (see `KnnConfig.backend`).

    torch is an optional accelerator: without it (or for approximate indexes) the search is FAISS.
    `auto` picks bf16 for searches of at least `_AUTO_BF16_MIN_MACS` multiply-adds where it is expected
    to pay, measured at Kaggle size (benchmarks/README.md):
    - label-aware searches (`gallery_labels` given) on a device with native bf16 kernels: a few dozen
      candidates per query settle the margin test, so the bf16 matmul's speed carries through;
    - plain top-k searches only on a GPU (`use_gpu`) with CUDA torch and a FAISS without GPU support:
      on CPUs, re-scoring the ~2k candidates the margin test needs is memory-bound and costs more than
      the bf16 matmul saves.
    """
    if config.index != "flat" or config.backend == "faiss":
        return "faiss"
    from whale_retrieval.knn_bf16 import torch_bf16_status

    available, native = torch_bf16_status(config.use_gpu)
    if config.backend == "torch_bf16":
        if not available:
            log.warning("knn.backend torch_bf16: torch is not importable; searching with FAISS")
            return "faiss"
        if not native:
            log.warning("knn.backend torch_bf16: no native bf16 kernels here; the search is exact but slow")
        return "torch_bf16"
    if not (native and n_query * n_gallery * dim >= _AUTO_BF16_MIN_MACS):
        return "faiss"
    if label_aware:
        return "torch_bf16"
    if not config.use_gpu:
        return "faiss"
    import torch

    return "torch_bf16" if torch.cuda.is_available() and not hasattr(faiss, "StandardGpuResources") else "faiss"


def default_chunk_size(dim: int, k: int, memory_budget_mb: int) -> int:
    """Query rows per chunk so the chunk's normalised copy and results fit the budget."""
    return max(1, (memory_budget_mb << 20) // (4 * dim + 12 * (k + 1)))


def _sort_ties_by_index(sims: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order each row by similarity descending, then gallery index ascending (missing -1 last)."""
    key_idx = np.where(idx < 0, np.iinfo(np.int64).max, idx)
    order = np.lexsort((key_idx, -sims), axis=1)
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(idx, order, axis=1)


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
            later slots may miss gallery rows (or hold -inf / -1). FAISS returns the full exact top-k
            anyway; the bf16 backend uses it to settle each query with a small candidate pool.
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
    if backend == "torch_bf16":
        from whale_retrieval.knn_bf16 import bf16_knn_search

        labels = None
        if gallery_labels is not None:
            codes = np.unique(np.asarray([str(x) for x in gallery_labels]), return_inverse=True)[1]
            labels = (codes.reshape(-1), max(1, n_individuals))
        sims, idx = bf16_knn_search(query_emb, query_norms, gallery_emb, gallery_norms, k, chunk_size, config, labels)
    else:
        sims, idx = _faiss_search(query_emb, query_norms, gallery_emb, gallery_norms, k, chunk_size, config)
    refine_near_ties(query_emb, query_norms, gallery_emb, gallery_norms, sims, idx)
    return sims, idx


def _faiss_search(
    query_emb: np.ndarray,
    query_norms: np.ndarray,
    gallery_emb: np.ndarray,
    gallery_norms: np.ndarray,
    k: int,
    chunk_size: int | None,
    config: KnnConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """`knn_search` with a FAISS index over query chunks (inputs validated, k ≤ gallery size)."""
    exact = config.index == "flat"
    fetch = k + 1 if exact and k < len(gallery_emb) else k
    chunk_size = chunk_size or default_chunk_size(query_emb.shape[1], fetch, config.memory_budget_mb)
    index = build_index(gallery_emb, config)
    sims = np.empty((len(query_emb), k), dtype=np.float32)
    idx = np.empty((len(query_emb), k), dtype=np.int64)
    for start, stop in chunks(len(query_emb), chunk_size):
        queries = _normalised(query_emb, query_norms, start, stop)
        chunk_sims, chunk_idx = index.search(queries, fetch)
        chunk_sims = np.where(chunk_idx < 0, -np.inf, chunk_sims).astype(np.float32)
        chunk_sims, chunk_idx = _sort_ties_by_index(chunk_sims, chunk_idx.astype(np.int64))
        if fetch > k:  # a (near-)tie at the k-th place: which row is in is decided on the full float64 row
            tied = np.flatnonzero(chunk_sims[:, k - 1] - chunk_sims[:, k] < NEAR_TIE_GAP)
            if tied.size:
                rows = start + tied
                fixed = exact_top_k_float64(query_emb[rows], query_norms[rows], gallery_emb, gallery_norms, k)
                chunk_sims[tied, :k], chunk_idx[tied, :k] = fixed
        sims[start:stop], idx[start:stop] = chunk_sims[:, :k], chunk_idx[:, :k]
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
