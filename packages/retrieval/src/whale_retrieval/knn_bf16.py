"""Exact cosine top-k with a bf16 candidate pass (torch, optional) and fp32 re-scoring.

Why: at Kaggle sizes (51k gallery × 28k queries, 4608-d) the search is one big matmul, and bf16
matmul runs ~4× faster than fp32 on CPUs with bf16 kernels (AVX512-BF16/AMX) and on GPUs. bf16
scores are not exact, so they only pick candidates; the answer comes from fp32 scores, and a margin
test proves that no excluded gallery row can belong to the top k.

The bound. With q, g the fp32 unit rows, q̃ = bf16(q), r_q = q − q̃ (same for g):
q·g − q̃·g̃ = q̃·r_g + r_q·g̃ + r_q·r_g, so by Cauchy–Schwarz |q·g − q̃·g̃| ≤ ‖q̃‖‖r_g‖ + ‖r_q‖‖g̃‖ + ‖r_q‖‖r_g‖,
with ‖r‖ measured row by row. Both the bf16 product (accumulated in fp32) and the fp32 re-score
add at most γ_d = d·2⁻²⁴/(1 − d·2⁻²⁴) times ‖q̃‖‖g̃‖ of summation error, and the bf16 output is
rounded once more (relative 2⁻⁸). x ↦ x + |x|·c is increasing, so the largest bf16 score left out
bounds every excluded row's fp32 score. A query whose k-th fp32 score is not strictly above that
bound is re-scored with four times as many candidates (first round: 2k + `bf16_extra_candidates`),
then, if still undecided, against the whole gallery: the result always equals the exact search
(ties to the lowest gallery index).
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from whale_retrieval.config import KnnConfig
from whale_retrieval.knn import _NORM_CHUNK_ROWS, _normalised, _sort_ties_by_index, _top_k_lowest_index_first

log = logging.getLogger(__name__)

BF16_UNIT_ROUNDOFF = 2.0**-8
FP32_UNIT_ROUNDOFF = 2.0**-24
_NORM_SLACK = 1e-3  # fp32 "unit" rows have norm 1 ± d·2⁻²⁴; 1e-3 covers any d below 16 million
_RESCORE_BYTES = 64 << 20


@functools.cache
def torch_bf16_status(use_gpu: bool) -> tuple[bool, bool]:
    """(torch importable, native bf16 matmul kernels on the device the search would use)."""
    try:
        import torch
    except ImportError:
        return False, False
    if use_gpu and torch.cuda.is_available():
        return True, bool(torch.cuda.is_bf16_supported())
    try:
        return True, bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True, False


def bf16_error_bound(query_residual: np.ndarray, gallery_residual: float, dim: int) -> np.ndarray:
    """Per query: a bound on |bf16 score before output rounding − fp32 score| over all gallery rows.

    Args:
        query_residual: ‖q − bf16(q)‖ of each unit query row.
        gallery_residual: the largest ‖g − bf16(g)‖ over the unit gallery rows.
        dim: embedding dimension (summation error grows with it).
    """
    q_norm = 1.0 + _NORM_SLACK + query_residual
    g_norm = 1.0 + _NORM_SLACK + gallery_residual
    rounding = q_norm * gallery_residual + query_residual * g_norm + query_residual * gallery_residual
    gamma = dim * FP32_UNIT_ROUNDOFF / (1.0 - dim * FP32_UNIT_ROUNDOFF)
    return rounding + gamma * (q_norm * g_norm + (1.0 + _NORM_SLACK) ** 2)


def excluded_score_bound(best_excluded_bf16: np.ndarray, error_bound: np.ndarray) -> np.ndarray:
    """Upper bound on the fp32 score of any row whose bf16 score is at most `best_excluded_bf16`."""
    output_rounding = np.abs(best_excluded_bf16) * BF16_UNIT_ROUNDOFF / (1.0 - BF16_UNIT_ROUNDOFF)
    return best_excluded_bf16 + output_rounding + error_bound


class _Bf16Gallery:
    """The unit gallery in fp32 (for re-scoring) and bf16 (for the candidate pass)."""

    def __init__(self, torch, gallery_emb: np.ndarray, norms: np.ndarray, device) -> None:
        n, dim = gallery_emb.shape
        self.fp32 = torch.empty((n, dim), dtype=torch.float32, device=device)
        self.bf16 = torch.empty((n, dim), dtype=torch.bfloat16, device=device)
        self.residual = 0.0
        for start in range(0, n, _NORM_CHUNK_ROWS):
            stop = min(n, start + _NORM_CHUNK_ROWS)
            block = torch.from_numpy(_normalised(gallery_emb, norms, start, stop)).to(device)
            self.fp32[start:stop], self.bf16[start:stop] = block, block.to(torch.bfloat16)
            residual = torch.linalg.vector_norm(block - self.bf16[start:stop].float(), dim=1).max()
            self.residual = max(self.residual, float(residual))


def _rescore(torch, queries, gallery: _Bf16Gallery, candidates: np.ndarray) -> np.ndarray:
    """fp32 scores of each query row against its candidate gallery rows, [rows, candidates].

    The gather of candidate rows is memory-bound; `np.take` copies rows ~3× faster than torch indexing.
    """
    n_rows, n_cand = candidates.shape
    dim = gallery.fp32.shape[1]
    step = max(1, _RESCORE_BYTES // (4 * n_cand * dim))
    source = gallery.fp32.cpu().numpy() if gallery.fp32.device.type == "cpu" else None
    out = torch.empty((n_rows, n_cand), dtype=torch.float32, device=queries.device)
    for start in range(0, n_rows, step):
        block = candidates[start : start + step]
        if source is not None:
            rows = torch.from_numpy(np.take(source, block.ravel(), axis=0).reshape(len(block), n_cand, dim))
        else:
            rows = gallery.fp32[torch.from_numpy(block).to(queries.device)]
        out[start : start + step] = torch.bmm(rows, queries[start : start + step, :, None])[..., 0]
    return out.cpu().numpy()


def _search_chunk(torch, queries_np: np.ndarray, gallery: _Bf16Gallery, k: int, extra: int):
    """Exact top-k of one query chunk; returns (sims, idx, number of rows settled only by a full scan)."""
    n_gallery, dim = gallery.fp32.shape
    queries = torch.from_numpy(queries_np).to(gallery.fp32.device)
    residual = torch.linalg.vector_norm(queries - queries.to(torch.bfloat16).float(), dim=1).cpu().numpy()
    stages = sorted({min(n_gallery, 2 * k + extra), min(n_gallery, 4 * (2 * k + extra))})
    fetch = min(n_gallery, stages[-1] + 1)
    top_vals, top_idx = torch.topk(queries.to(torch.bfloat16) @ gallery.bf16.T, fetch, dim=1)
    top_vals, top_idx = top_vals.float().cpu().numpy().astype(np.float64), top_idx.cpu().numpy()
    error = bf16_error_bound(residual.astype(np.float64), gallery.residual, dim)
    sims = np.empty((len(queries_np), k), dtype=np.float32)
    idx = np.empty((len(queries_np), k), dtype=np.int64)
    pending = np.arange(len(queries_np))
    for n_cand in stages:
        candidates = top_idx[pending, :n_cand]
        scores = _rescore(torch, queries[torch.from_numpy(pending).to(queries.device)], gallery, candidates)
        stage_sims, stage_idx = _sort_ties_by_index(scores, candidates)
        if n_cand == n_gallery:
            settled = np.ones(len(pending), dtype=bool)
        else:
            settled = stage_sims[:, k - 1] > excluded_score_bound(top_vals[pending, n_cand], error[pending])
        sims[pending[settled]], idx[pending[settled]] = stage_sims[settled, :k], stage_idx[settled, :k]
        pending = pending[~settled]
        if not pending.size:
            return sims, idx, 0
    full = (queries[torch.from_numpy(pending).to(queries.device)] @ gallery.fp32.T).cpu().numpy()
    sims[pending], idx[pending] = _top_k_lowest_index_first(full, k)
    return sims, idx, len(pending)


def bf16_knn_search(
    query_emb: np.ndarray,
    query_norms: np.ndarray,
    gallery_emb: np.ndarray,
    gallery_norms: np.ndarray,
    k: int,
    chunk_size: int | None,
    config: KnnConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """`knn_search`'s exact answer via the bf16 candidate pass (inputs already validated, k ≤ gallery size).

    Memory: the unit gallery in fp32 + bf16 (6 bytes per value) plus one chunk's bf16 score block
    (`chunk_size` × gallery rows × 2 bytes; default from `config.memory_budget_mb`).
    """
    import torch

    device = torch.device("cuda" if config.use_gpu and torch.cuda.is_available() else "cpu")
    n_gallery, dim = gallery_emb.shape
    chunk_size = chunk_size or max(1, (config.memory_budget_mb << 20) // (2 * n_gallery + 8 * dim))
    extra = max(0, config.bf16_extra_candidates)
    with torch.inference_mode():
        gallery = _Bf16Gallery(torch, gallery_emb, gallery_norms, device)
        sims = np.empty((len(query_emb), k), dtype=np.float32)
        idx = np.empty((len(query_emb), k), dtype=np.int64)
        full_scans = 0
        for start in range(0, len(query_emb), chunk_size):
            stop = min(len(query_emb), start + chunk_size)
            queries = _normalised(query_emb, query_norms, start, stop)
            sims[start:stop], idx[start:stop], scans = _search_chunk(torch, queries, gallery, k, extra)
            full_scans += scans
    if full_scans:
        log.info("bf16 kNN: %d of %d queries needed a full fp32 scan (thin margins)", full_scans, len(query_emb))
    return sims, idx
