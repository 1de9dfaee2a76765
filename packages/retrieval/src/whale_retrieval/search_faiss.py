"""FAISS searchers: `IndexFlatIP` (exact) and the approximate `IndexIVFFlat` / `IndexHNSWFlat`, CPU or GPU."""

from __future__ import annotations

import logging

import faiss
import numpy as np

from whale_retrieval._blocks import chunks, norm_chunk_rows
from whale_retrieval.config import KnnConfig
from whale_retrieval.near_ties import settle_kth_ties
from whale_retrieval.rows import check_embeddings, normalised, sort_ties_by_index

log = logging.getLogger(__name__)


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
        sample = np.sort(np.random.default_rng(config.seed).choice(n, size=min(n, nlist * 256), replace=False))
        index.train(np.ascontiguousarray(gallery_emb[sample] / norms[sample, None], np.float32))
        index.nprobe = min(config.ivf_nprobe, nlist)
    for start, stop in chunks(n, norm_chunk_rows(dim)):
        index.add(normalised(gallery_emb, norms, start, stop))
    return _maybe_to_gpu(index, config)


def _maybe_to_gpu(index: faiss.Index, config: KnnConfig) -> faiss.Index:
    if not config.use_gpu:
        return index
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        log.warning("knn.use_gpu is set but faiss has no GPU here; searching on the CPU")
        return index
    return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)


def default_chunk_size(dim: int, k: int, memory_budget_mb: int) -> int:
    """Query rows per chunk so the chunk's normalised copy and results fit the budget."""
    return max(1, (memory_budget_mb << 20) // (4 * dim + 12 * (k + 1)))


class FaissSearcher:
    """`Searcher` over a FAISS index of the normalised gallery (query chunks; exact k-th-place ties settled)."""

    def __init__(self, gallery_emb: np.ndarray, gallery_norms: np.ndarray, config: KnnConfig, chunk_size) -> None:
        del gallery_norms  # build_index validates and norms the rows itself
        self.gallery, self.config, self.chunk_size = gallery_emb, config, chunk_size
        self.index = build_index(gallery_emb, config)

    def search(self, query_emb, query_norms, k, labels=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query row; FAISS returns the full top-k, so `labels` is not needed."""
        exact = self.config.index == "flat"
        fetch = k + 1 if exact and k < len(self.gallery) else k
        chunk_size = self.chunk_size or default_chunk_size(query_emb.shape[1], fetch, self.config.memory_budget_mb)
        sims = np.empty((len(query_emb), k), dtype=np.float32)
        idx = np.empty((len(query_emb), k), dtype=np.int64)
        next_sims = np.empty(len(query_emb), dtype=np.float32)  # the best excluded score of each row
        for start, stop in chunks(len(query_emb), chunk_size):
            chunk_sims, chunk_idx = self.index.search(normalised(query_emb, query_norms, start, stop), fetch)
            chunk_sims = np.where(chunk_idx < 0, -np.inf, chunk_sims).astype(np.float32)
            chunk_sims, chunk_idx = sort_ties_by_index(chunk_sims, chunk_idx.astype(np.int64))
            sims[start:stop], idx[start:stop] = chunk_sims[:, :k], chunk_idx[:, :k]
            next_sims[start:stop] = chunk_sims[:, k] if fetch > k else -np.inf
        settle_kth_ties(sims, idx, next_sims, query_emb, self.gallery)
        return sims, idx
