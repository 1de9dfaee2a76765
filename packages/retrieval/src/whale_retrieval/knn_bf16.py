"""Exact cosine top-k with a bf16 candidate pass (torch, optional) and fp32 re-scoring.

Why: at Kaggle sizes (51k gallery × 28k queries, 4608-d) the search is one big matmul, and bf16
matmul runs faster than fp32 on CPUs with bf16 kernels (2.3× measured on 2 AVX512-BF16 cores; more
with AMX) and on GPUs. bf16 scores are not exact, so they only pick candidates; the answer comes from
re-scored candidates, and a margin test proves that no excluded gallery row can belong to the answer.

The bound. With q, g the fp32 unit rows, q̃ = bf16(q), r_q = q − q̃ (same for g):
q·g − q̃·g̃ = q̃·r_g + r_q·g̃ + r_q·r_g, so by Cauchy–Schwarz |q·g − q̃·g̃| ≤ ‖q̃‖‖r_g‖ + ‖r_q‖‖g̃‖ + ‖r_q‖‖r_g‖,
with ‖r‖ measured row by row. Both the bf16 product (accumulated in fp32) and the fp32 re-score
add at most γ_d = d·2⁻²⁴/(1 − d·2⁻²⁴) times ‖q̃‖‖g̃‖ of summation error, the unit rows' own rounding
a few 2⁻²⁴ more, and the bf16 output is rounded once more (relative 2⁻⁸). x ↦ x + |x|·c is
increasing, so the largest bf16 score left out bounds every excluded row's score. A query whose last
needed re-scored score is not above that bound by `NEAR_TIE_GAP` is re-scored with four times as
many candidates (first round: 2k + `bf16_extra_candidates`), then, if still undecided, against the
whole gallery in float64: the result always equals the exact search (ties to the lowest gallery
index; near-ties in float64 order, see `whale_retrieval.near_ties`).

Ranking individuals needs less. Given gallery labels, a row only has to be exact up to the neighbour
that brings its n-th distinct individual (`rank_individuals` scores an individual by its first
neighbour, so the top n individuals and their scores are fixed there). The margin test then runs at
that position instead of the k-th, and a pool of a few dozen candidates settles almost every query:
this is what makes the bf16 pass pay on CPUs, where re-scoring hundreds of rows per query does not.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from whale_core.cpu import cpu_has_native_bf16
from whale_retrieval._blocks import chunks
from whale_retrieval.bf16_gallery import GROUP_COLUMNS, Bf16Gallery, gallery_block_rows, l3_bytes
from whale_retrieval.config import KnnConfig
from whale_retrieval.near_ties import NEAR_TIE_GAP, exact_top_k_float64
from whale_retrieval.rows import sort_ties_by_index

log = logging.getLogger(__name__)

BF16_UNIT_ROUNDOFF = 2.0**-8
FP32_UNIT_ROUNDOFF = 2.0**-24
_NORM_SLACK = 1e-3  # fp32 "unit" rows have norm 1 ± d·2⁻²⁴; 1e-3 covers any d below 16 million
#: Label-aware searches first re-score up to this many candidates per wanted individual (then four times as many).
_LABEL_AWARE_POOL_PER_INDIVIDUAL = 6
#: First-stage pools are sized per row in steps of this many candidates (`_pool_sizes`); the rounding up is also
#: the prediction's slack.
POOL_STEP = 4
#: Most bytes of the re-score's gather buffer. It is allocated per call and first touched by the gather, so past a
#: few MB it pays page faults instead of staying in cache: a VM whose sysfs says 480 MiB of L3 (a quarter: 120 MB
#: per call) took 0.78 s at 3,000 × 12,000 × 4608 with 260,000 minor faults, 0.57 s with 8 MiB (90,000).
GATHER_BYTES_MAX = 8 << 20


@functools.cache
def torch_bf16_status(use_gpu: bool) -> tuple[bool, bool]:
    """(torch importable, native bf16 matmul kernels on the device the search would use)."""
    try:
        import torch
    except ImportError:
        return False, False
    if use_gpu and torch.cuda.is_available():
        return True, bool(torch.cuda.is_bf16_supported(including_emulation=False))  # V100/T4 only emulate it
    return True, cpu_has_native_bf16()


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
    # the unit rows' own rounding (the re-score divides the caller's rows by their norms) and the division
    normalisation = 4 * FP32_UNIT_ROUNDOFF * (1.0 + _NORM_SLACK) ** 2
    return rounding + gamma * (q_norm * g_norm + (1.0 + _NORM_SLACK) ** 2) + normalisation


def excluded_score_bound(best_excluded_bf16: np.ndarray, error_bound: np.ndarray) -> np.ndarray:
    """Upper bound on the fp32 score of any row whose bf16 score is at most `best_excluded_bf16`."""
    output_rounding = np.abs(best_excluded_bf16) * BF16_UNIT_ROUNDOFF / (1.0 - BF16_UNIT_ROUNDOFF)
    return best_excluded_bf16 + output_rounding + error_bound


@dataclass(frozen=True)
class _QueryChunk:
    """One chunk of queries on the search device: the caller's rows, their bf16 unit rows, their error bounds."""

    rows: Any  # [n, dim] fp32, the caller's rows
    inv_norms: Any  # [n] fp32
    bf16: Any  # [n, dim] bf16(rows × inv_norms)
    error: np.ndarray  # [n] float64, `bf16_error_bound` of each row


def _query_chunk(torch, query_emb: np.ndarray, query_norms: np.ndarray, gallery: Bf16Gallery) -> _QueryChunk:
    """The chunk's rows on the gallery's device (fp32; copied only when another dtype), their bf16 unit rows (in
    the gallery's reused query buffer) and error bounds."""
    device = gallery.rows.device
    rows = torch.from_numpy(np.ascontiguousarray(query_emb, dtype=np.float32)).to(device)
    inv_norms = torch.from_numpy(1.0 / query_norms).to(device).float()
    queries_bf16 = gallery.query_buffer(len(rows))
    residual = gallery.unit_bf16(rows, inv_norms, queries_bf16)
    error = bf16_error_bound(residual.cpu().numpy().astype(np.float64), gallery.residual, gallery.shape[1])
    return _QueryChunk(rows, inv_norms, queries_bf16, error)


def default_gather_bytes() -> int:
    """The re-score's gather buffer: a quarter of this machine's L3, at most `GATHER_BYTES_MAX`."""
    return min(l3_bytes() // 4, GATHER_BYTES_MAX)


def _rescore(torch, queries: _QueryChunk, query_rows, gallery: Bf16Gallery, candidates: np.ndarray,
             gather_bytes: int | None = None) -> np.ndarray:  # fmt: skip
    """Scores of the chunk's `query_rows` (device index tensor) against their candidate rows, [rows, candidates]
    float64.

    fp32 dot products of the unit query rows (rebuilt step by step exactly as the bf16 pass made them) with the
    caller's gallery rows, times the gallery's float64 inverse norms. The gather of candidate rows is
    memory-bound: rows are copied step by step into one reused buffer of `gather_bytes` (`index_select(out=...)`),
    which avoids page-faulting a fresh multi-GB array. The default, a quarter of L3 up to `GATHER_BYTES_MAX`, keeps
    the gathered rows in cache until the products read them (1.8× a 64 MB buffer, `benchmarks/bf16_blocks.py`).
    """
    n_rows, n_cand = candidates.shape
    dim = gallery.rows.shape[1]
    device = queries.rows.device
    step = max(1, min(n_rows, (gather_bytes or default_gather_bytes()) // (4 * n_cand * dim)))
    buffer = torch.empty((step * n_cand, dim), dtype=torch.float32, device=device)
    unit = torch.empty((step, dim), dtype=torch.float32, device=device)
    flat = torch.from_numpy(np.ascontiguousarray(candidates)).to(device).reshape(-1)
    out = torch.empty((n_rows, n_cand), dtype=torch.float32, device=device)
    for start, stop in chunks(n_rows, step):
        picked, rows, query = query_rows[start:stop], buffer[: (stop - start) * n_cand], unit[: stop - start]
        torch.index_select(queries.rows, 0, picked, out=query)
        query *= queries.inv_norms[picked, None]
        torch.index_select(gallery.rows, 0, flat[start * n_cand : stop * n_cand], out=rows)
        # [1 × dim] @ [dim × candidates] per query: 5× the rate of bmm's matrix-vector form on CPU (fp32 either way)
        out[start:stop] = (query[:, None, :] @ rows.view(stop - start, n_cand, dim).transpose(1, 2))[:, 0]
    return (out.double() * gallery.inv_norms[flat].view(n_rows, n_cand)).cpu().numpy()


def nth_distinct_position(label_codes: np.ndarray, n: int) -> np.ndarray:
    """Per row of sorted neighbours' label codes: the position where the n-th distinct label first appears.

    Rows with fewer than n distinct labels get the row length (no position in the row settles them).
    """
    n_rows, width = label_codes.shape
    order = np.argsort(label_codes, axis=1, kind="stable")
    sorted_codes = np.take_along_axis(label_codes, order, axis=1)
    first = np.ones_like(sorted_codes, dtype=bool)
    first[:, 1:] = sorted_codes[:, 1:] != sorted_codes[:, :-1]
    first_positions = np.sort(np.where(first, order, width), axis=1)
    if first_positions.shape[1] < n:
        return np.full(n_rows, width)
    return first_positions[:, n - 1]


def _settle_positions(stage_idx: np.ndarray, k: int, labels: tuple[np.ndarray, int] | None) -> np.ndarray:
    """The last position of each sorted row that must be exact: k - 1, or earlier for label-aware searches."""
    if labels is None:
        return np.full(len(stage_idx), k - 1)
    codes, n_distinct = labels
    return np.minimum(k - 1, nth_distinct_position(codes[stage_idx], n_distinct))


def _stages(n_gallery: int, k: int, extra: int, labels: tuple[np.ndarray, int] | None) -> list[int]:
    """Candidate pool sizes, smallest first; the last round before a full scan is four times the first."""
    first = 2 * k + extra if labels is None else min(2 * k + extra, _LABEL_AWARE_POOL_PER_INDIVIDUAL * labels[1])
    return sorted({min(n_gallery, first), min(n_gallery, 4 * first)})


def _pool_sizes(top_vals: np.ndarray, top_idx: np.ndarray, error: np.ndarray, n_cand: int, k: int, labels):
    """Per row, the smallest pool (a multiple of `POOL_STEP`, at most `n_cand`) that its bf16 scores predict
    will settle: the first excluded row's bound below the bf16 score at the needed position.

    The re-score is a gather of fp32 gallery rows and costs in proportion to the pool; on the Kaggle-sized
    benchmark the needed position is 4–13 and the predicted pool 10–30 (median 15), half of a fixed 30.
    A prediction only sizes the pool: `_settled` still proves every row on its exact scores, and a row its
    pool does not settle goes on to the next stage.
    """
    position = _settle_positions(top_idx[:, :n_cand], k, labels)
    needed = np.take_along_axis(top_vals, np.minimum(position, n_cand - 1)[:, None], axis=1)
    # pool j (the first j candidates) leaves top_vals[:, j] as the best excluded score, for j = 1 … n_cand
    fits = excluded_score_bound(top_vals[:, 1 : n_cand + 1], error[:, None]) + NEAR_TIE_GAP < needed
    fits &= np.arange(1, n_cand + 1) > position[:, None]
    pool = np.where(fits.any(axis=1), fits.argmax(axis=1) + 1, n_cand)
    return np.minimum(n_cand, -(-pool // POOL_STEP) * POOL_STEP)


def _settled(stage_sims: np.ndarray, position: np.ndarray, k: int, excluded_bound: np.ndarray) -> np.ndarray:
    """Rows whose needed prefix (through `position`) is proven complete and free of near-ties at its end.

    Every row scoring within `NEAR_TIE_GAP` below the last needed score must be in the pool (so the float64
    near-tie re-sort can see it), and a near-tie at the k-th place with a pool row past k is left to the
    full float64 scan, which decides which of the two is in.
    """
    n_cand = stage_sims.shape[1]
    last = np.take_along_axis(stage_sims, np.minimum(position, n_cand - 1)[:, None], axis=1)[:, 0]
    settled = (position < n_cand) & (last - NEAR_TIE_GAP > excluded_bound)
    if n_cand > k:
        settled &= (position < k - 1) | (stage_sims[:, k - 1] - stage_sims[:, k] >= NEAR_TIE_GAP)
    return settled


def query_chunk_rows(n_gallery: int, dim: int, memory_budget_mb: int) -> int:
    """Query rows per chunk of the bf16 search: its rows, scores and candidates within the budget."""
    return max(1, (memory_budget_mb << 20) // (2 * n_gallery + 8 * dim))


def _bf16_scores(torch, queries_bf16, gallery: Bf16Gallery):
    """The chunk's bf16 scores against every gallery block ([blocks × rows × width]) and their group maxima,
    in the gallery's workspace.

    Each block's columns c, c + n, c + 2n, … (n = width / `GROUP_COLUMNS`) form a group; `maxima` holds each
    group's maximum (a strided maximum costs ~0.15 ns per score on the CPU, torch.topk ~1 ns). The scores stay
    in the workspace until the next chunk, so a second, larger pool selects from them without a second matmul.
    """
    n_rows, per_block = len(queries_bf16), gallery.width // GROUP_COLUMNS
    scores, maxima = gallery.workspace(n_rows)
    for j in range(len(gallery.blocks)):
        gallery.scores(queries_bf16, j, out=scores[j])
        view = scores[j].view(n_rows, GROUP_COLUMNS, per_block)
        torch.amax(view, dim=1, out=maxima[:, j * per_block : (j + 1) * per_block])
    return scores, maxima


def _bf16_top(torch, scores, maxima, fetch: int) -> tuple[np.ndarray, np.ndarray]:
    """(bf16 scores float64, gallery rows) of the `fetch` best per row of `_bf16_scores`, ties in any order.

    The `fetch` groups with the highest maxima hold the `fetch` best scores, and only their members are ranked.
    Why that is exact: a group left out has its maximum at most the `fetch`-th selected maximum, and the
    selected groups hold at least `fetch` scores at or above it (one per group), so no score left out beats the
    `fetch`-th ranked one.
    """
    n_blocks, n_rows, width = scores.shape
    per_block = width // GROUP_COLUMNS
    _, groups = torch.topk(maxima, min(fetch, maxima.shape[1]), dim=1)
    block, column = groups // per_block, groups % per_block
    rows = torch.arange(n_rows, device=scores.device)[:, None]
    # [rows, groups, GROUP_COLUMNS]: one indexing op (a flat int64 index of every member cost 2.5× as much)
    members = scores.view(n_blocks, n_rows, GROUP_COLUMNS, per_block)[block, rows, :, column]
    top_vals, pos = torch.topk(members.reshape(n_rows, -1), fetch, dim=1)
    # gallery rows of the winners only: their group's first row, plus the member's offset within the group
    top_idx = torch.gather(block * width + column, 1, pos // GROUP_COLUMNS) + (pos % GROUP_COLUMNS) * per_block
    return top_vals.float().cpu().numpy().astype(np.float64), top_idx.cpu().numpy()


def _settle_pools(torch, queries: _QueryChunk, gallery: Bf16Gallery, pending: np.ndarray, top, pools: np.ndarray,
                  k: int, labels, out) -> np.ndarray:  # fmt: skip
    """Re-score each pending row's pool of bf16 candidates, one group of rows per pool size; write the rows the
    margin test proves into `out` = (sims, idx) and return which of `pending` they are.

    Args:
        pending: the chunk's rows still to settle.
        top: (bf16 scores, gallery rows) of the `pending` rows' best candidates, best first, at least
            `pools.max() + 1` of them (the one after the pool bounds every row left out).
        pools: the pool size of each pending row.
    """
    (top_vals, top_idx), (sims, idx) = top, out
    error, device = queries.error[pending], queries.rows.device
    settled = np.zeros(len(pending), dtype=bool)
    for pool in np.unique(pools):
        group = np.flatnonzero(pools == pool)
        candidates = top_idx[group, :pool]
        group_rows = torch.from_numpy(pending[group]).to(device)
        group_sims = _rescore(torch, queries, group_rows, gallery, candidates)
        group_sims, group_idx = sort_ties_by_index(group_sims, candidates)
        bound = excluded_score_bound(top_vals[group, pool], error[group])
        proven = _settled(group_sims, _settle_positions(group_idx, k, labels), k, bound)
        width, done = min(k, pool), pending[group[proven]]
        sims[done, :width], idx[done, :width] = group_sims[proven, :width], group_idx[proven, :width]
        settled[group[proven]] = True
    return settled


def _search_chunk(torch, queries: _QueryChunk, gallery: Bf16Gallery, k: int, extra: int, labels, full_scan):
    """Top-k of one query chunk, exact up to `_settle_positions`; returns (sims, idx, rows needing a full scan).

    The bf16 pass scores the chunk once and fetches the smallest pool (+1, the best excluded score for the
    proof); queries a pool does not settle fetch the next pool's candidates from the same scores. `full_scan(rows)`
    returns the float64 top-k of the chunk's `rows` for the queries no pool settles.
    """
    n_gallery = gallery.shape[0]
    n_queries = len(queries.error)
    sims = np.full((n_queries, k), -np.inf, dtype=np.float32)
    idx = np.full((n_queries, k), -1, dtype=np.int64)
    pending = np.arange(n_queries)
    chunk_scores = chunk_maxima = None  # scored on first use: a gallery no bigger than the pool is scanned whole
    top_vals, top_idx = np.zeros((n_queries, 0)), np.zeros((n_queries, 0), np.int64)  # rows of `pending`
    for stage, n_cand in enumerate(_stages(n_gallery, k, extra, labels)):
        if n_cand == n_gallery:
            break  # a pool of the whole gallery is the full scan
        rows = torch.from_numpy(pending).to(queries.rows.device)
        if top_idx.shape[1] < n_cand + 1:
            if chunk_scores is None:
                chunk_scores, chunk_maxima = _bf16_scores(torch, queries.bf16, gallery)
            scores, maxima = chunk_scores, chunk_maxima
            if len(pending) < n_queries:  # the few queries left: copies of their rows only
                scores, maxima = scores[:, rows], maxima[rows]
            top_vals, top_idx = _bf16_top(torch, scores, maxima, min(n_gallery, n_cand + 1))
        error = queries.error[pending]
        if stage == 0:
            pools = _pool_sizes(top_vals, top_idx, error, n_cand, k, labels)
        else:
            pools = np.full(len(pending), n_cand)
        settled = _settle_pools(torch, queries, gallery, pending, (top_vals, top_idx), pools, k, labels, (sims, idx))
        pending, top_vals, top_idx = pending[~settled], top_vals[~settled], top_idx[~settled]
        if not pending.size:
            return sims, idx, 0
    sims[pending], idx[pending] = full_scan(pending)
    return sims, idx, len(pending)


def bf16_knn_search(
    query_emb: np.ndarray,
    query_norms: np.ndarray,
    gallery_emb: np.ndarray,
    gallery_norms: np.ndarray,
    k: int,
    chunk_size: int | None,
    config: KnnConfig,
    labels: tuple[np.ndarray, int] | None = None,
    *,
    gallery_block: int | None = None,
    prepack: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`knn_search`'s answer via the bf16 candidate pass (inputs already validated, k ≤ gallery size).

    `labels` = (integer label code of every gallery row, n): rows need only be exact up to the neighbour
    that brings the n-th distinct label (see the module docstring); slots past the candidate pool hold
    -inf / -1. Memory: the unit gallery in bf16 (2 bytes per value; the caller's rows are re-scored in
    place, copied to float32 only when they are another dtype) plus one chunk's bf16 score block
    (`chunk_size` × gallery rows × 2 bytes; default from `config.memory_budget_mb`).
    `gallery_block` (rows per bf16 matmul; default `gallery_block_rows`) and `prepack` (pack the blocks for
    oneDNN; default where `can_prepack`) change the speed only, never the answer.
    """
    import torch

    device = torch.device("cuda" if config.use_gpu and torch.cuda.is_available() else "cpu")
    n_gallery, dim = gallery_emb.shape
    chunk_size = chunk_size or query_chunk_rows(n_gallery, dim, config.memory_budget_mb)
    extra = max(0, config.bf16_extra_candidates)
    with torch.inference_mode():
        query_rows = min(chunk_size, len(query_emb))
        block = gallery_block or gallery_block_rows(dim, query_rows)
        gallery = Bf16Gallery(torch, gallery_emb, gallery_norms, device, block, query_rows, prepack)
        sims = np.empty((len(query_emb), k), dtype=np.float32)
        idx = np.empty((len(query_emb), k), dtype=np.int64)
        full_scans = 0
        for start, stop in chunks(len(query_emb), chunk_size):
            queries = _query_chunk(torch, query_emb[start:stop], query_norms[start:stop], gallery)

            def full_scan(rows: np.ndarray, start: int = start) -> tuple[np.ndarray, np.ndarray]:
                rows = start + rows
                return exact_top_k_float64(query_emb[rows], gallery_emb, k)

            chunk = _search_chunk(torch, queries, gallery, k, extra, labels, full_scan)
            sims[start:stop], idx[start:stop], scans = chunk
            full_scans += scans
    if full_scans:
        log.info("bf16 kNN: %d of %d queries needed a full float64 scan (thin margins)", full_scans, len(query_emb))
    return sims, idx


class Bf16Searcher:
    """`Searcher` by the bf16 candidate pass (`bf16_knn_search`), on the CPU or a CUDA GPU (`use_gpu`)."""

    def __init__(self, gallery_emb: np.ndarray, gallery_norms: np.ndarray, config: KnnConfig, chunk_size) -> None:
        self.gallery, self.norms, self.config, self.chunk_size = gallery_emb, gallery_norms, config, chunk_size

    def search(self, query_emb, query_norms, k, labels=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query row, exact up to the n-th distinct label's neighbour when `labels` are given."""
        return bf16_knn_search(
            query_emb, query_norms, self.gallery, self.norms, k, self.chunk_size, self.config, labels
        )
