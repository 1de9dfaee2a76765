"""Float64 re-scoring of neighbours whose fp32 scores are too close to be ordered reliably.

fp32 dot products of 4608-d unit rows err by ~1e-8 (summation order differs between BLAS, FAISS and
torch), so two neighbours closer than that can come out in either order — and when they belong to
different individuals, the fifth answer flips. Measured at Kaggle size: 1–2 of 27,956 queries per
method, the float32 reference included. Rows of the result with two scores within `NEAR_TIE_GAP` of each
other are re-scored here in float64 from the caller's own rows (with float64 norms) and re-sorted, so their
order is the float64 order (ties still to the lowest gallery index). Such rows are rare, so this costs
little; it only reorders what the search found.

Also the float64 full scan (`exact_top_k_float64`) that settles the few rows a search cannot: a
near-tie at the k-th place, or a bf16 margin too thin to prove.
"""

from __future__ import annotations

import numpy as np

from whale_retrieval._blocks import chunks, norm_chunk_rows

FP32_UNIT_ROUNDOFF = 2.0**-24
_FP32_SCAN_ROWS = 4096
#: Neighbours this close in fp32 are re-scored in float64 (≫ the ~1e-8 fp32 error at d = 4608, ≪ score spread).
NEAR_TIE_GAP = 1e-6


def _float64_unit(rows: np.ndarray) -> np.ndarray:
    """Rows in float64 divided by their float64 norms."""
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.sqrt(np.einsum("ij,ij->i", rows, rows))[:, None]


def _float64_norms(rows: np.ndarray) -> np.ndarray:
    """Float64 norms of the rows, summed in float64 without a float64 copy of them (einsum casts as it goes)."""
    return np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))


def _float64_pair_cosines(query_rows: np.ndarray, gallery_rows: np.ndarray) -> np.ndarray:
    """cos(query_rows[i], gallery_rows[i]) in float64: dot products and norms summed in float64 from the rows as
    they are (half the time of dividing float64 copies by their norms first; the two differ by ~1e-16)."""
    dots = np.einsum("ij,ij->i", query_rows, gallery_rows, dtype=np.float64)
    return dots / (_float64_norms(query_rows) * _float64_norms(gallery_rows))


def refine_near_ties(query_emb: np.ndarray, gallery_emb: np.ndarray, sims: np.ndarray, idx: np.ndarray) -> int:
    """Re-score the near-tied neighbours of (sims, idx) in float64 and re-sort them in place; returns how many rows.

    Only the runs of neighbours whose consecutive fp32 scores are within `NEAR_TIE_GAP` are re-scored
    (typically two entries of a row, not the row): fp32 errs by far less than the gap, so float64 can only
    reorder entries inside a run. Their scores become the float64 ones (as float32).

    Args:
        query_emb, gallery_emb: the search's raw inputs (their norms are taken here, in float64).
        sims, idx: the search result ([n, k], descending; -1 marks an empty slot), modified in place.
    """
    if sims.shape[1] < 2:
        return 0
    with np.errstate(invalid="ignore"):  # -inf − -inf in padded slots
        gaps = sims[:, :-1] - sims[:, 1:]
    tied = np.isfinite(gaps) & (gaps < NEAR_TIE_GAP)
    involved = np.zeros(sims.shape, bool)
    involved[:, :-1] |= tied
    involved[:, 1:] |= tied
    rows, pos = np.nonzero(involved)  # row-major: each run's slots are consecutive and ascending
    if not rows.size:
        return 0
    starts = (pos == 0) | ~tied[rows, np.maximum(pos - 1, 0)]
    run = np.cumsum(starts)
    found = idx[rows, pos]
    scores = np.empty(rows.size, dtype=np.float64)
    for begin, end in chunks(rows.size, norm_chunk_rows(gallery_emb.shape[1])):
        scores[begin:end] = _float64_pair_cosines(query_emb[rows[begin:end]], gallery_emb[found[begin:end]])
    order = np.lexsort((found, -scores, run))
    sims[rows, pos], idx[rows, pos] = scores[order].astype(np.float32), found[order]
    return np.unique(rows).size


def kth_tied_rows(sims: np.ndarray, next_sims: np.ndarray) -> np.ndarray:
    """Rows of a sorted top-k whose k-th score is within `NEAR_TIE_GAP` of the best excluded one (`next_sims`)."""
    return np.flatnonzero(sims[:, -1] - next_sims < NEAR_TIE_GAP)


def settle_kth_ties(
    sims: np.ndarray, idx: np.ndarray, next_sims: np.ndarray, query_emb: np.ndarray, gallery_emb: np.ndarray
) -> int:
    """Rows of a sorted top-k with a near-tie at the k-th place (`kth_tied_rows`): which gallery row is in is
    decided on the full float64 row, in place; returns how many.

    One call for all such rows of a search: each call is an fp32 pass over the whole gallery.
    """
    k = sims.shape[1]
    tied = kth_tied_rows(sims, next_sims)
    for begin, end in chunks(tied.size, 512):
        rows = tied[begin:end]
        sims[rows], idx[rows] = exact_top_k_float64(query_emb[rows], gallery_emb, k)
    return tied.size


def _fp32_error_margin(dim: int) -> float:
    """Twice a worst-case bound on |fp32 − exact| cosine of unit rows (summation γ_d, norms), plus slack."""
    gamma = dim * FP32_UNIT_ROUNDOFF / (1.0 - dim * FP32_UNIT_ROUNDOFF)
    return 2.0 * (gamma + 8 * FP32_UNIT_ROUNDOFF) + NEAR_TIE_GAP


def _fp32_cosines(unit_queries: np.ndarray, gallery_emb: np.ndarray) -> np.ndarray:
    """fp32 cosines of fp32 unit query rows against every (raw) gallery row."""
    fp32 = np.empty((len(unit_queries), len(gallery_emb)), dtype=np.float32)
    for start, stop in chunks(len(gallery_emb), _FP32_SCAN_ROWS):  # big blocks: small BLAS calls are slow
        block = np.asarray(gallery_emb[start:stop], dtype=np.float32)
        fp32[:, start:stop] = (unit_queries @ block.T) / np.sqrt(np.einsum("ij,ij->i", block, block))
    return fp32


def exact_top_k_float64(
    query_rows: np.ndarray, gallery_emb: np.ndarray, k: int, fp32_scores: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of a few raw query rows against the whole gallery in float64, ties to the lowest gallery index.

    An fp32 pass over the gallery (blocks, norms on the way) finds every row that can be in the float64
    top-k: those within twice the worst-case fp32 error of the fp32 k-th score; only they are scored in
    float64. For the few rows a search cannot settle.

    Args:
        fp32_scores: the rows' fp32 cosines against every gallery row, when the caller already has them (the
            BLAS search's score block, which errs by as little as this pass): the pass is then skipped.
    """
    unit = _float64_unit(query_rows)
    dim = gallery_emb.shape[1]
    fp32 = fp32_scores if fp32_scores is not None else _fp32_cosines(unit.astype(np.float32), gallery_emb)
    margin = _fp32_error_margin(dim)
    sims = np.empty((len(unit), k), dtype=np.float32)
    idx = np.empty((len(unit), k), dtype=np.int64)
    for row, values in enumerate(fp32):
        kth_value = np.partition(values, len(values) - k)[len(values) - k]
        candidates = np.flatnonzero(values >= kth_value - margin)  # ascending index
        picked = gallery_emb[candidates]
        exact = np.einsum("ij,j->i", picked, unit[row], dtype=np.float64) / _float64_norms(picked)
        order = np.argsort(-exact, kind="stable")[:k]
        sims[row], idx[row] = exact[order], candidates[order]
    return sims, idx
