"""Exact (and optionally approximate) cosine top-k search with FAISS, in bounded memory.

Rows are L2-normalised here (cosine similarity = inner product of unit vectors). The exact path is
FAISS `IndexFlatIP` over query chunks, or for large searches a bf16 candidate pass with torch whose
candidates are re-scored in fp32 and proven complete (`whale_retrieval.knn_bf16`); ties are broken
deterministically, lowest gallery index first, also at the k-th position (rows with a tie there are
re-solved from the full similarity row).
"""

from __future__ import annotations

import logging

import faiss
import numpy as np

from whale_core import InputError
from whale_retrieval.config import KnnConfig

log = logging.getLogger(__name__)

_NORM_CHUNK_ROWS = 8192
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
    for start in range(0, emb.shape[0], _NORM_CHUNK_ROWS):
        block = emb[start : start + _NORM_CHUNK_ROWS].astype(np.float64)
        norms[start : start + len(block)] = np.sqrt(np.einsum("ij,ij->i", block, block))
    for bad, what in ((~np.isfinite(norms), "contain NaN or inf"), (norms == 0.0, "have zero norm")):
        rows = np.flatnonzero(bad)
        if rows.size:
            first = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
            raise InputError(f"{name} embeddings: {rows.size} row(s) {what} (rows {first})")
    return norms


def _normalised(emb: np.ndarray, norms: np.ndarray, start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray((emb[start:stop] / norms[start:stop, None]).astype(np.float32))


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
    for start in range(0, n, _NORM_CHUNK_ROWS):
        index.add(_normalised(gallery_emb, norms, start, min(n, start + _NORM_CHUNK_ROWS)))
    return _maybe_to_gpu(index, config)


def _maybe_to_gpu(index: faiss.Index, config: KnnConfig) -> faiss.Index:
    if not config.use_gpu:
        return index
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        log.warning("knn.use_gpu is set but faiss has no GPU here; searching on the CPU")
        return index
    return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)


def resolve_backend(config: KnnConfig, n_query: int, n_gallery: int, dim: int) -> str:
    """The backend an exact search of this size runs on: "faiss" or "torch_bf16" (see `KnnConfig.backend`).

    torch is an optional accelerator: without it (or for approximate indexes) the search is FAISS.
    `auto` picks bf16 only where it is expected to pay: a GPU search (`use_gpu`) with CUDA torch but a
    FAISS without GPU support, of at least `_AUTO_BF16_MIN_MACS` multiply-adds. On CPUs it stays with
    FAISS: measured on a 2-core AVX512-BF16 machine, the fp32 re-score's gather of candidate rows is
    memory-bound and costs more than the bf16 matmul saves (benchmarks/README.md).
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
    if not (config.use_gpu and native and n_query * n_gallery * dim >= _AUTO_BF16_MIN_MACS):
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


def _top_k_lowest_index_first(full: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of every full similarity row, ties (also at the k-th place) to the lowest gallery index."""
    sims = np.empty((len(full), k), dtype=np.float32)
    idx = np.empty((len(full), k), dtype=np.int64)
    for row, values in enumerate(full):
        kth_value = np.partition(values, len(values) - k)[len(values) - k]
        candidates = np.flatnonzero(values >= kth_value)  # ascending index
        best = candidates[np.argsort(-values[candidates], kind="stable")[:k]]
        sims[row], idx[row] = values[best], best
    return sims, idx


def _resolve_boundary_ties(
    queries: np.ndarray, gallery_emb: np.ndarray, gallery_norms: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of a few query rows from their full similarity rows, lowest index first among ties."""
    full = np.empty((len(queries), len(gallery_emb)), dtype=np.float32)
    for start in range(0, len(gallery_emb), _NORM_CHUNK_ROWS):
        stop = min(len(gallery_emb), start + _NORM_CHUNK_ROWS)
        full[:, start:stop] = queries @ _normalised(gallery_emb, gallery_norms, start, stop).T
    return _top_k_lowest_index_first(full, k)


def knn_search(
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    k: int,
    *,
    chunk_size: int | None = None,
    config: KnnConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery rows by cosine similarity for every query row.

    Exact by default (`config.index == "flat"`): the answer equals a brute-force sort of the full
    similarity matrix by (similarity descending, gallery index ascending) — ties, including ties at
    the k-th place, go to the lowest gallery index. Memory is bounded by searching query chunks.

    Args:
        query_emb: [n_query, d] embeddings (any float dtype; normalised here).
        gallery_emb: [n_gallery, d] embeddings.
        k: neighbours per query; capped at the gallery size.
        chunk_size: query rows per chunk; default from `config.memory_budget_mb`.
        config: index type and options; default exact.

    Returns:
        (similarities float32 [n_query, k] in descending order, gallery indices int64 [n_query, k]).
        Approximate indexes may return fewer than k hits: those slots hold -inf and -1.

    Raises:
        InputError: bad shapes, mismatched dimensions, NaN/inf or zero-norm rows, k < 1.
    """
    config = config or KnnConfig()
    if k < 1:
        raise InputError(f"knn_search: k must be at least 1, got {k}")
    query_norms = check_embeddings(query_emb, "query")
    gallery_norms = check_embeddings(gallery_emb, "gallery")
    if query_emb.shape[1] != gallery_emb.shape[1]:
        raise InputError(
            f"knn_search: query dimension {query_emb.shape[1]} differs from gallery dimension {gallery_emb.shape[1]}"
        )
    k = min(k, len(gallery_emb))
    exact = config.index == "flat"
    fetch = k + 1 if exact and k < len(gallery_emb) else k
    chunk_size = chunk_size or default_chunk_size(query_emb.shape[1], fetch, config.memory_budget_mb)
    if resolve_backend(config, len(query_emb), len(gallery_emb), query_emb.shape[1]) == "torch_bf16":
        from whale_retrieval.knn_bf16 import bf16_knn_search

        return bf16_knn_search(query_emb, query_norms, gallery_emb, gallery_norms, k, chunk_size, config)
    index = build_index(gallery_emb, config)
    sims = np.empty((len(query_emb), k), dtype=np.float32)
    idx = np.empty((len(query_emb), k), dtype=np.int64)
    for start in range(0, len(query_emb), chunk_size):
        stop = min(len(query_emb), start + chunk_size)
        queries = _normalised(query_emb, query_norms, start, stop)
        chunk_sims, chunk_idx = index.search(queries, fetch)
        chunk_sims = np.where(chunk_idx < 0, -np.inf, chunk_sims).astype(np.float32)
        chunk_sims, chunk_idx = _sort_ties_by_index(chunk_sims, chunk_idx.astype(np.int64))
        if fetch > k:
            tied = np.flatnonzero(chunk_sims[:, k - 1] == chunk_sims[:, k])
            if tied.size:
                fixed_sims, fixed_idx = _resolve_boundary_ties(queries[tied], gallery_emb, gallery_norms, k)
                chunk_sims[tied, :k], chunk_idx[tied, :k] = fixed_sims, fixed_idx
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
