"""The batched core of verification: one query's keypoints against all its candidates at once.

For one query, the candidates' descriptors are stacked into a padded block [K × M, D + 1] (M = the most
keypoints of any candidate), so a single matmul with the query's descriptors (both orientations stacked)
gives every distance; the nearest and second-nearest gallery keypoint of each query keypoint within each
candidate are two reductions over the last axis. Distances come from inner products: with the block's
extra column holding |g|² and the query's holding −½, score = q·g − ½|g|², so |q − g|² = |q|² − 2·score
(for binary descriptors unpacked to 0/1 floats the same form is the exact Hamming distance).
"""

from __future__ import annotations

import cv2
import numpy as np

from whale_matcher import _bf16
from whale_matcher.config import MatcherConfig
from whale_matcher.features import Features

_PAD = np.float32(1e30)  # |g|² of a padding row: its score is −5e29, never a neighbour
_BLOCK_KEYPOINTS = 32_768  # gallery keypoints per matmul (82 candidates of 400): bounds the score matrix
_USAC = {"usac_magsac": cv2.USAC_MAGSAC, "usac_accurate": cv2.USAC_ACCURATE}


def vectors(desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 vectors whose inner products give the distances (binary: unpacked bits), and |v|²."""
    vec = np.unpackbits(desc, axis=1).astype(np.float32) if desc.dtype == np.uint8 else np.asarray(desc, np.float32)
    return vec, np.einsum("ij,ij->i", vec, vec)


def _candidate_block(gallery: Features, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(block [K·M, D'+1] float32, keypoint rows [K, M] into `gallery` (−1 = padding), counts [K])."""
    starts = gallery.offsets[rows]
    counts = gallery.offsets[rows + 1] - starts
    width = max(int(counts.max(initial=0)), 2)
    slot = np.arange(width)
    valid = slot[None, :] < counts[:, None]
    keypoint = np.where(valid, starts[:, None] + slot[None, :], -1)
    vec, norm = vectors(gallery.descriptors(keypoint[valid]))
    block = np.zeros((len(rows) * width, vec.shape[1] + 1), np.float32)
    flat = valid.reshape(-1)
    block[flat, :-1] = vec
    block[:, -1] = _PAD
    block[flat, -1] = norm
    return block, keypoint, counts


def top2(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(argmax, best, second best) over the last axis of [n, K, M] scores (overwrites the best slots).

    Ties keep the first index as the best, and the second best then equals the best.
    """
    best = scores.argmax(axis=2)[..., None]
    s1 = np.take_along_axis(scores, best, axis=2)[..., 0]
    np.put_along_axis(scores, best, -np.inf, axis=2)
    return best[..., 0], s1, scores.max(axis=2)


def ratio_passes(qnorm: np.ndarray, s1: np.ndarray, s2: np.ndarray, ratio: float, binary: bool) -> np.ndarray:
    """Lowe's test d1 < ratio · d2 [n, K] from the best / second-best scores (|q − g|² = |q|² − 2·score)."""
    d1, d2 = qnorm[:, None] - 2.0 * s1, qnorm[:, None] - 2.0 * s2
    if not binary:
        d1, d2 = np.sqrt(np.maximum(d1, 0.0)), np.sqrt(np.maximum(d2, 0.0))
    return d1.astype(np.float64) < ratio * d2.astype(np.float64)


def _block_fp32(query, qnorm, block, shape, cfg, parts, binary):
    """(ok, best, per orientation the best query keypoint of each gallery keypoint or None) by fp32 matmul."""
    k, width = shape
    scores = (query @ block.T).reshape(len(query), k, width)
    back = [scores[part].argmax(axis=0) for part in parts] if cfg.mutual else None  # before top2 edits scores
    best, s1, s2 = top2(scores)
    return ratio_passes(qnorm, s1, s2, cfg.ratio, binary), best, back


def _block_bf16(query, query_bf16: _bf16.Bf16Query, qnorm, block, shape, cfg):
    """(ok, best) of one candidate block: the certified bf16 ratio test, exact fp32 on the unsure cells.

    The bf16 matmul runs over sub-blocks of candidates whose fp32 score copy stays in cache.
    """
    k, width = shape
    rows_bf16, gallery_residual = _bf16.gallery_rows(block)
    best, s1, s2 = (np.empty((len(query), k), dtype) for dtype in (np.int64, np.float32, np.float32))
    step = max(1, _bf16.SCORE_BLOCK_BYTES // (4 * len(query) * width))
    for first in range(0, k, step):
        cand = slice(first, min(k, first + step))
        scores = query_bf16.scores(rows_bf16[cand.start * width : cand.stop * width])
        best[:, cand], s1[:, cand], s2[:, cand] = _bf16.top2(scores.reshape(len(query), -1, width))
    gallery_norm = float(np.sqrt(block[block[:, -1] < _PAD, -1].max(initial=0.0)))
    qlen = np.sqrt(qnorm.astype(np.float64))
    e, c = _bf16.error_bounds(qlen, query_bf16.residual, gallery_norm, gallery_residual, block.shape[1] - 1)
    ok, unsure = _bf16.decide(s1, s2, qnorm, e, c, cfg.ratio)
    for cand in np.flatnonzero(unsure.any(axis=0)):
        rows = np.flatnonzero(unsure[:, cand])
        exact = (query[rows] @ block[cand * width : (cand + 1) * width].T)[:, None, :]
        b, e1, e2 = top2(exact)
        ok[rows, cand] = ratio_passes(qnorm[rows], e1, e2, cfg.ratio, False)[:, 0]
        best[rows, cand] = b[:, 0]
    return ok, best


def ratio_matches(
    query_descs: list[np.ndarray], gallery: Features, rows: np.ndarray, cfg: MatcherConfig
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ratio-test (and, with `cfg.mutual`, mutual) matches of each query orientation to each candidate.

    Float descriptors without `mutual` take the certified bf16 pass (`whale_matcher._bf16`) where torch
    has bf16 kernels and `cfg.matmul` allows it; its answers equal the fp32 matmul's (up to fp32
    rounding, in cells whose d1 / d2 lies within ~1e-4 of the ratio, as between any two fp32 matchers).

    Args:
        query_descs: descriptors of the query, one array per orientation (plain, mirrored).
        gallery: the gallery features; `rows` [K] are the candidates.

    Returns:
        Per orientation, (ok [n, K] bool: query keypoint i matches in candidate k; partner [n, K] int64: the
        matched gallery keypoint's row in `gallery.xy`, meaningful where ok).
    """
    sizes = [len(d) for d in query_descs]
    out = [(np.zeros((n, len(rows)), bool), np.zeros((n, len(rows)), np.int64)) for n in sizes]
    if sum(sizes) == 0 or len(rows) == 0:
        return out
    binary = query_descs[0].dtype == np.uint8
    use_bf16 = uses_bf16(cfg, binary)
    qvec, qnorm = vectors(np.concatenate(query_descs))
    query = np.concatenate([qvec, np.full((len(qvec), 1), -0.5, np.float32)], axis=1)
    bounds = np.cumsum([0, *sizes])
    parts = [slice(bounds[o], bounds[o + 1]) for o in range(len(sizes))]
    widest = max(int(gallery.counts()[rows].max(initial=0)), 2)
    per_block = max(1, _BLOCK_KEYPOINTS // widest)
    query_bf16 = _bf16.Bf16Query(query, _bf16.SCORE_BLOCK_BYTES // (4 * len(query)) + widest) if use_bf16 else None
    for first in range(0, len(rows), per_block):
        cand = slice(first, first + per_block)
        block, keypoint, counts = _candidate_block(gallery, rows[cand])
        if use_bf16:
            (ok, best), back = _block_bf16(query, query_bf16, qnorm, block, keypoint.shape, cfg), None
        else:
            ok, best, back = _block_fp32(query, qnorm, block, keypoint.shape, cfg, parts, binary)
        ok &= (counts >= 2)[None, :]
        for o, part in enumerate(parts):
            ok_o, best_o = ok[part], best[part]
            if back is not None:  # mutual: the partner's best query keypoint of this orientation is i
                ok_o &= np.arange(sizes[o])[:, None] == np.take_along_axis(back[o], best_o.T, axis=1).T
            out[o][0][:, cand] = ok_o
            out[o][1][:, cand] = np.take_along_axis(keypoint, best_o.T, axis=1).T
    return out


def uses_bf16(cfg: MatcherConfig, binary: bool) -> bool:
    """Whether `ratio_matches` takes the bf16 pass: float descriptors, no mutual check, `cfg.matmul` and torch."""
    if binary or cfg.mutual or cfg.matmul == "fp32":
        return False
    return cfg.matmul == "bf16" or _bf16.available()


def fit(src: np.ndarray, dst: np.ndarray, cfg: MatcherConfig) -> tuple[np.ndarray | None, np.ndarray]:
    """Robust 2-D fit of matched points: (2×3 model or None, inlier mask [m] bool)."""
    if cfg.geometry == "ransac":
        model, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=cfg.reproj_px)
    else:
        model, mask = cv2.estimateAffine2D(src, dst, method=_USAC[cfg.geometry], ransacReprojThreshold=cfg.reproj_px)
    if model is None or mask is None:
        return None, np.zeros(len(src), bool)
    return model, mask.reshape(-1).astype(bool)


def inlier_count(qxy: np.ndarray, gallery: Features, ok: np.ndarray, partner: np.ndarray, cfg: MatcherConfig) -> int:
    """Inliers of the fit of one (orientation, candidate)'s matches (0 below `cfg.min_matches`)."""
    rows = np.flatnonzero(ok)
    if len(rows) < cfg.min_matches:
        return 0
    return int(fit(qxy[rows], gallery.xy[partner[rows]], cfg)[1].sum())


def query_evidence(
    query: Features, q: int, gallery: Features, rows: np.ndarray, cfg: MatcherConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matches [K], inliers [K], mirrored [K]) of query photo `q` against candidates `rows`.

    A fit runs only where it can change the answer: at least `min_matches` matches, and for the second
    orientation only when its match count (an upper bound of its inliers) could beat the first's inliers.
    """
    keypoints = [query.keypoints(q)] + ([query.flipped_keypoints(q)] if cfg.mirror else [])
    found = ratio_matches([desc for _, desc in keypoints], gallery, rows, cfg)
    counts = np.stack([ok.sum(axis=0) for ok, _ in found])  # [orientations, K]
    matches, inliers = counts[0].copy(), np.zeros(len(rows), np.int64)
    mirrored = np.zeros(len(rows), bool)
    for k in np.flatnonzero(counts.max(axis=0) >= cfg.min_matches):
        if len(keypoints) == 1:
            inliers[k] = inlier_count(keypoints[0][0], gallery, found[0][0][:, k], found[0][1][:, k], cfg)
            continue
        first = int(counts[1, k] > counts[0, k])  # the orientation with more matches first
        got = [0, 0]
        got[first] = inlier_count(keypoints[first][0], gallery, found[first][0][:, k], found[first][1][:, k], cfg)
        other = 1 - first
        bound = counts[other, k] if counts[other, k] >= cfg.min_matches else 0
        # the mirrored orientation wins only with strictly more inliers than the plain one
        if (bound > got[0]) if other == 1 else (bound >= got[1]):
            got[other] = inlier_count(keypoints[other][0], gallery, found[other][0][:, k], found[other][1][:, k], cfg)
        win = int(got[1] > got[0])
        matches[k], inliers[k], mirrored[k] = counts[win, k], got[win], bool(win)
    return matches, inliers, mirrored
