"""Float64 re-scoring of neighbours whose fp32 scores are too close to be ordered reliably.

fp32 dot products of 4608-d unit rows err by ~1e-8 (summation order differs between BLAS, FAISS and
torch), so two neighbours closer than that can come out in either order — and when they belong to
different individuals, the fifth answer flips. Measured at Kaggle size: 1–2 of 27,956 queries per
method, the float32 reference included. Rows of the result with two scores within `NEAR_TIE_GAP` of each
other are re-scored here in float64 from the caller's own (unnormalised) rows and re-sorted, so their
order is the float64 order (ties still to the lowest gallery index). Such rows are rare, so this costs
little; it only reorders what the search found.

Also the float64 full scan (`exact_top_k_float64`) that settles the few rows a search cannot: a
near-tie at the k-th place, or a bf16 margin too thin to prove.
"""

from __future__ import annotations

import numpy as np

from whale_retrieval._blocks import chunks, norm_chunk_rows

#: Neighbours this close in fp32 are re-scored in float64 (≫ the ~1e-8 fp32 error at d = 4608, ≪ score spread).
NEAR_TIE_GAP = 1e-6


def near_tie_rows(sims: np.ndarray) -> np.ndarray:
    """Rows of a descending similarity matrix holding two finite scores within `NEAR_TIE_GAP`."""
    if sims.shape[1] < 2:
        return np.zeros(0, dtype=np.int64)
    with np.errstate(invalid="ignore"):  # -inf − -inf in padded slots
        gaps = sims[:, :-1] - sims[:, 1:]
    return np.flatnonzero((np.isfinite(gaps) & (gaps < NEAR_TIE_GAP)).any(axis=1))


def refine_near_ties(
    query_emb: np.ndarray,
    query_norms: np.ndarray,
    gallery_emb: np.ndarray,
    gallery_norms: np.ndarray,
    sims: np.ndarray,
    idx: np.ndarray,
) -> int:
    """Re-score the near-tie rows of (sims, idx) in float64 and re-sort them in place; returns how many.

    Args:
        query_emb, gallery_emb: the search's raw inputs; `query_norms`, `gallery_norms` their float64 norms.
        sims, idx: the search result ([n, k], descending; -1 marks an empty slot), modified in place.
    """
    rows = near_tie_rows(sims)
    for row in rows:
        hits = idx[row] >= 0
        found = idx[row, hits]
        query = np.asarray(query_emb[row], dtype=np.float64) / query_norms[row]
        scores = (np.asarray(gallery_emb[found], dtype=np.float64) @ query) / gallery_norms[found]
        order = np.lexsort((found, -scores))
        sims[row, : found.size], idx[row, : found.size] = scores[order].astype(np.float32), found[order]
    return rows.size


def exact_top_k_float64(
    query_rows: np.ndarray, query_norms: np.ndarray, gallery_emb: np.ndarray, gallery_norms: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of a few raw query rows against the whole gallery in float64, ties to the lowest gallery index.

    Costs a float64 pass over the gallery (in blocks), so it is for the few rows a search cannot settle.
    """
    queries = np.asarray(query_rows, dtype=np.float64) / query_norms[:, None]
    full = np.empty((len(queries), len(gallery_emb)), dtype=np.float64)
    for start, stop in chunks(len(gallery_emb), norm_chunk_rows(gallery_emb.shape[1])):
        block = np.asarray(gallery_emb[start:stop], dtype=np.float64)
        full[:, start:stop] = (queries @ block.T) / gallery_norms[start:stop]
    sims = np.empty((len(full), k), dtype=np.float32)
    idx = np.empty((len(full), k), dtype=np.int64)
    for row, values in enumerate(full):
        kth_value = np.partition(values, len(values) - k)[len(values) - k]
        candidates = np.flatnonzero(values >= kth_value)  # ascending index
        best = candidates[np.argsort(-values[candidates], kind="stable")[:k]]
        sims[row], idx[row] = values[best], best
    return sims, idx
