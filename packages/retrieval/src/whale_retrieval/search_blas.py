"""Exact cosine top-k with one fp32 BLAS matmul per query block and a partial sort: the default CPU search.

Why not FAISS `IndexFlatIP` here: it needs a normalised copy of the gallery (4 bytes per value) and its
own top-k heap; numpy's matmul of unit query rows by the raw gallery rows, scaled by the gallery's
inverse norms, then `argpartition` of the k + 1 best, is as exact and faster (benchmarks/README.md:
the equal-k rows). Ties go to the lowest gallery index; a (near-)tie at the k-th place is decided on
the full float64 row.
"""

from __future__ import annotations

import numpy as np

from whale_retrieval._blocks import chunks
from whale_retrieval.config import KnnConfig
from whale_retrieval.near_ties import exact_top_k_float64, kth_tied_rows
from whale_retrieval.rows import normalised, sort_ties_by_index

#: Query rows per matmul block: enough for BLAS to run at its rate, few enough for the score block to stay small.
_BLOCK_QUERIES = 1024
#: Rows per `argpartition` call. It returns an int64 index of every score: for a whole [1024 × 51,033] block that is
#: a fresh 418 MB array per block (10–17 ns a score at Kaggle size, page faults included), for 32 rows 13 MB that
#: the allocator reuses (1.7 ns; benchmarks/README.md, Equal k).
_PARTITION_ROWS = 32


def _partial_top(block: np.ndarray, fetch: int) -> np.ndarray:
    """Column indices of each row's `fetch` largest scores, in no order (`argpartition` over row slices)."""
    n_rows, n_cols = block.shape
    top = np.empty((n_rows, fetch), dtype=np.int64)
    for start, stop in chunks(n_rows, _PARTITION_ROWS):
        top[start:stop] = np.argpartition(block[start:stop], n_cols - fetch, axis=1)[:, n_cols - fetch :]
    return top


class BlasSearcher:
    """`Searcher`: exact top-k from [query block × gallery] fp32 score blocks."""

    def __init__(self, gallery_emb: np.ndarray, gallery_norms: np.ndarray, config: KnnConfig, chunk_size) -> None:
        self.gallery = np.ascontiguousarray(gallery_emb, dtype=np.float32)  # no copy when already fp32
        self.raw = gallery_emb
        self.inverse_norms = (1.0 / gallery_norms).astype(np.float32)
        budget_rows = (config.memory_budget_mb << 20) // (4 * len(self.gallery) + 4 * self.gallery.shape[1])
        self.block = max(1, min(chunk_size or _BLOCK_QUERIES, budget_rows))

    def search(self, query_emb, query_norms, k, labels=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query row (the full exact top-k, so `labels` is not needed)."""
        n_gallery = len(self.gallery)
        fetch = min(k + 1, n_gallery)
        sims = np.empty((len(query_emb), k), dtype=np.float32)
        idx = np.empty((len(query_emb), k), dtype=np.int64)
        scores = np.empty((min(self.block, len(query_emb)), n_gallery), dtype=np.float32)
        for start, stop in chunks(len(query_emb), self.block):
            block = scores[: stop - start]
            np.matmul(normalised(query_emb, query_norms, start, stop), self.gallery.T, out=block)
            block *= self.inverse_norms
            if fetch < n_gallery:
                top = _partial_top(block, fetch)
            else:
                top = np.broadcast_to(np.arange(n_gallery), block.shape)
            chunk_sims, chunk_idx = sort_ties_by_index(np.take_along_axis(block, top, axis=1), top)
            sims[start:stop], idx[start:stop] = chunk_sims[:, :k], chunk_idx[:, :k]
            if fetch > k:  # a near-tie with the best excluded row: decided in float64, from this block's scores
                tied = kth_tied_rows(chunk_sims[:, :k], chunk_sims[:, k])
                if tied.size:
                    rows = start + tied
                    sims[rows], idx[rows] = exact_top_k_float64(query_emb[rows], self.raw, k, fp32_scores=block[tied])
        return sims, idx
