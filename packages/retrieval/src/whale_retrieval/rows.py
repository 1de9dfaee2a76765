"""Embedding rows shared by every searcher: validation with norms, unit rows, deterministic tie order.

Validation is one fp32 pass (row norms by `einsum` over cache-sized blocks; a NaN or inf anywhere
makes its row's norm non-finite); only rows whose fp32 norm is not finite or zero are looked at again
in float64, so a huge but finite row is not mistaken for an overflow. Searches re-order their near-ties
in float64 from the raw rows (`whale_retrieval.near_ties`), so fp32 norms do not decide any order.
"""

from __future__ import annotations

import numpy as np

from whale_core import InputError
from whale_retrieval._blocks import chunks, norm_chunk_rows


def check_embeddings(emb: np.ndarray, name: str) -> np.ndarray:
    """Validate a [n, d] embedding matrix and return its row norms (float64 array of fp32-accurate norms).

    Raises:
        InputError: not 2-D, no columns, NaN/inf values, zero-norm rows, or rows whose values float32 cannot
            hold (all below its normal range, or any above its largest); the message names `name`
            ("query"/"gallery"), how many rows and the first few row indices.
    """
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.shape[1] == 0:
        raise InputError(f"{name} embeddings: expected a 2-D [n, d] array with d > 0, got shape {emb.shape}")
    if not np.issubdtype(emb.dtype, np.number):
        raise InputError(f"{name} embeddings: expected numbers, got dtype {emb.dtype}")
    norms = np.empty(emb.shape[0], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for start, stop in chunks(emb.shape[0], 2 * norm_chunk_rows(emb.shape[1])):
            block = np.asarray(emb[start:stop], dtype=np.float32)
            norms[start:stop] = np.sqrt(np.einsum("ij,ij->i", block, block))
    suspect = np.flatnonzero(~np.isfinite(norms) | (norms == 0.0))
    unfit = np.zeros(len(norms), dtype=bool)  # finite in float64, but beyond what fp32 (the searches') holds
    fp32 = np.finfo(np.float32)
    if suspect.size:  # overflow or underflow in fp32, or really bad rows: decide in float64
        rows = np.asarray(emb[suspect], dtype=np.float64)
        scale = np.abs(rows).max(axis=1, initial=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            norms[suspect] = scale * np.linalg.norm(rows / np.where(scale > 0, scale, 1.0)[:, None], axis=1)
        unfit[suspect] = np.isfinite(norms[suspect]) & (scale > 0)
        unfit[suspect] &= (scale > fp32.max) | (scale < fp32.smallest_normal)
    problems = (
        (~np.isfinite(norms), "contain NaN or inf"),
        (norms == 0.0, "have zero norm"),
        (
            unfit,
            f"have values float32 cannot hold (largest |value| above {fp32.max:.2g} or below "
            f"{fp32.smallest_normal:.2g}; the search computes in float32: rescale them)",
        ),
    )
    for bad, what in problems:
        rows = np.flatnonzero(bad)
        if rows.size:
            first = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
            raise InputError(f"{name} embeddings: {rows.size} row(s) {what} (rows {first})")
    return norms


def normalised(emb: np.ndarray, norms: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows start:stop divided by their norms, block by block, as contiguous float32."""
    out = np.empty((stop - start, emb.shape[1]), dtype=np.float32)
    for begin, end in chunks(stop - start, norm_chunk_rows(emb.shape[1])):
        rows = slice(start + begin, start + end)
        np.divide(emb[rows], norms[rows, None], out=out[begin:end], casting="unsafe")
    return out


def sort_ties_by_index(sims: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order each row by similarity descending, then gallery index ascending (missing -1 last).

    float32 scores without NaN (every search's) sort as one int64 key per entry — the score's order-preserving
    integer image in the high 32 bits, the index in the low 32 — by numpy's SIMD sort: 3.6× a two-key `lexsort`
    at 2,000 × 101 (benchmarks/README.md, Equal k). -0.0 comes back as 0.0. Other inputs take the `lexsort`.
    """
    if sims.dtype == np.float32 and idx.size and idx.max() < _LOW_32 and not np.isnan(sims).any():
        return _sort_packed(sims, idx)
    key_idx = np.where(idx < 0, np.iinfo(np.int64).max, idx)
    order = np.lexsort((key_idx, -sims), axis=1)
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(idx, order, axis=1)


_LOW_32 = (1 << 32) - 1  # the index field; -1 (a missing hit) is stored as this, so it sorts last


def _ordered_int(bits: np.ndarray) -> np.ndarray:
    """float32 bit patterns (as int64) ↔ integers in the floats' order: negative floats have their 31 value bits
    flipped (the map is its own inverse)."""
    return np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _sort_packed(sims: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bits = (sims + np.float32(0.0)).view(np.int32).astype(np.int64)  # + 0.0: -0.0 and 0.0 tie, as floats do
    key = (-_ordered_int(bits) << 32) | (idx & _LOW_32)
    key.sort(axis=1)
    low = key & _LOW_32
    sorted_sims = _ordered_int(-(key >> 32)).astype(np.int32).view(np.float32)
    return sorted_sims, np.where(low == _LOW_32, -1, low)
