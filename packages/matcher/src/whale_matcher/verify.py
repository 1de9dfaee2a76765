"""Geometric verification of (query, gallery) photo pairs, and drawing of one pair's inlier matches.

`verify_pairs` streams the pairs grouped by query: each query's candidates are matched in one batched
matmul (`whale_matcher._batch`), the ratio test runs on the per-candidate top-2, and RANSAC only where
enough matches survive; chunks of queries go to `cfg.workers` processes. Nothing all-pairs is held in
memory. The answers equal a per-pair loop of `cv2.BFMatcher.knnMatch(k=2)` + ratio test +
`cv2.estimateAffinePartial2D` (tests/matcher compare them).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from tqdm.auto import tqdm

from whale_core import InputError
from whale_matcher import _batch, _parallel
from whale_matcher.config import MatcherConfig
from whale_matcher.features import Features

_TASK_PAIRS = 256  # pairs per worker task (whole queries)


@dataclasses.dataclass(frozen=True)
class PairEvidence:
    """Local-feature evidence per pair, in the order of the `pairs` given.

    Attributes:
        matches: int32 [P] ratio-test (and mutual, if set) matches of the winning orientation.
        inliers: int32 [P] geometric inliers (0 where fewer than `min_matches` matches, or the fit failed).
        inlier_ratio: float32 [P] inliers / max(matches, 1).
        mirrored: bool [P] True when the mirrored query won (strictly more inliers).
    """

    matches: np.ndarray
    inliers: np.ndarray
    inlier_ratio: np.ndarray
    mirrored: np.ndarray

    def __len__(self) -> int:
        return len(self.matches)


def _check(query: Features, gallery: Features, pairs: np.ndarray, cfg: MatcherConfig) -> np.ndarray:
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or (pairs.size and pairs.dtype.kind not in "iu"):
        raise ValueError(f"pairs must be an integer array [P, 2], got {pairs.dtype} {pairs.shape}")
    pairs = pairs.astype(np.int64, copy=False)
    if len(pairs) and ((pairs.min(axis=0) < 0).any() or (pairs.max(axis=0) >= [len(query), len(gallery)]).any()):
        raise ValueError(f"pairs index beyond {len(query)} query / {len(gallery)} gallery photos")
    if not query.coding.compatible(gallery.coding) or query.dim != gallery.dim:
        raise InputError(
            f"query descriptors ({query.coding}, {query.dim}) do not match the gallery's ({gallery.coding}, "
            f"{gallery.dim}) (features of different extractors?)"
        )
    if cfg.mirror and not query.can_flip:
        raise InputError(
            f"match.features.mirror is on but the query's {query.coding} features were extracted without mirror"
        )
    return pairs


def _verify_task(task: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker: evidence of the sorted pairs [start, stop) (whole query groups)."""
    query, gallery, sorted_pairs, cfg = _parallel.shared()
    part = sorted_pairs[task[0] : task[1]]
    cuts = np.flatnonzero(np.diff(part[:, 0])) + 1
    results = [
        _batch.query_evidence(query, int(group[0, 0]), gallery, group[:, 1], cfg) for group in np.split(part, cuts)
    ]
    return tuple(np.concatenate(col) for col in zip(*results)) if results else (np.zeros(0),) * 3


def verify_pairs(
    query: Features, gallery: Features, pairs: np.ndarray, cfg: MatcherConfig, *, progress: bool = True
) -> PairEvidence:
    """Ratio-test matches and geometric inliers of every (query row, gallery row) pair.

    Args:
        query: query photos' features (`can_flip` when `cfg.mirror`).
        gallery: gallery photos' features.
        pairs: int [P, 2] (query row, gallery row); any order, repeats allowed. P can be millions.
        cfg: ratio, mutual, geometry, reproj_px, min_matches, mirror, workers.
        progress: show a tqdm bar.

    Returns:
        `PairEvidence` in the order of `pairs`.

    Raises:
        InputError: query and gallery descriptors of different kinds; mirror asked but not extracted.
        ValueError: a malformed or out-of-range `pairs`.
    """
    pairs = _check(query, gallery, pairs, cfg)
    order = np.argsort(pairs[:, 0], kind="stable")
    sorted_pairs = pairs[order]
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_pairs[:, 0]) != 0]) if len(pairs) else np.zeros(0, np.int64)
    tasks, begin = [], 0
    for start in [*starts[1:].tolist(), len(pairs)]:
        if start - begin >= _TASK_PAIRS or start == len(pairs):
            tasks.append((begin, start))
            begin = start
    tasks = [t for t in tasks if t[1] > t[0]]
    matches, inliers, mirrored = (
        np.zeros(len(pairs), np.int32),
        np.zeros(len(pairs), np.int32),
        np.zeros(len(pairs), bool),
    )
    shared = (query, gallery, sorted_pairs, cfg)
    if cfg.workers > 1 and _batch.uses_bf16(cfg, query.binary):
        import torch  # noqa: F401  (imported once here, so that the forked workers share it)
    with tqdm(total=len(pairs), desc="verify", unit="pair", disable=None if progress else True) as bar:
        for (begin, stop), (m, i, r) in zip(tasks, _parallel.imap_ordered(_verify_task, tasks, shared, cfg.workers)):
            where = order[begin:stop]
            matches[where], inliers[where], mirrored[where] = m, i, r
            bar.update(stop - begin)
    ratio = (inliers / np.maximum(matches, 1)).astype(np.float32)
    return PairEvidence(matches=matches, inliers=inliers, inlier_ratio=ratio, mirrored=mirrored)


def match_pair(
    query_xy: np.ndarray, query_desc: np.ndarray, gallery_xy: np.ndarray, gallery_desc: np.ndarray, cfg: MatcherConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One pair in detail (one orientation, as given), for drawing.

    Returns:
        (query points [m, 2], gallery points [m, 2]) of the inlier matches, and the 2×3 transform mapping
        query to gallery pixels (None, with m = 0, below `min_matches` matches or when the fit fails).
    """
    xy = np.asarray(gallery_xy, np.float32).reshape(-1, 2)
    offsets = np.array([0, len(xy)], np.int64)
    gallery = Features(np.array(["gallery"]), offsets, xy, np.asarray(gallery_desc), np.zeros((1, 2), np.int32))
    query_xy = np.asarray(query_xy, np.float32).reshape(-1, 2)
    empty = np.zeros((0, 2), np.float32)
    ((ok, partner),) = _batch.ratio_matches([np.asarray(query_desc)], gallery, np.zeros(1, np.int64), cfg)
    rows = np.flatnonzero(ok[:, 0])
    if len(rows) < cfg.min_matches:
        return empty, empty, None
    src, dst = query_xy[rows], gallery.xy[partner[rows, 0]]
    model, mask = _batch.fit(src, dst, cfg)
    if model is None:
        return empty, empty, None
    return src[mask], dst[mask], model


def match_photos(
    query: Features, q: int, gallery: Features, g: int, cfg: MatcherConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """`match_pair` of query photo `q` and gallery photo `g`, choosing the orientation as `verify_pairs` does.

    Returns:
        (query points, gallery points, transform, mirrored). Query points are in the unflipped crop's pixels
        (a mirrored win is mapped back with x' = w − 1 − x); the transform maps the flipped crop when mirrored.
    """
    plain = match_pair(*query.keypoints(q), *gallery.keypoints(g), cfg)
    if not cfg.mirror or not query.can_flip:
        return (*plain, False)
    flipped = match_pair(*query.flipped_keypoints(q), *gallery.keypoints(g), cfg)
    if len(flipped[0]) <= len(plain[0]):
        return (*plain, False)
    qpts = flipped[0].copy()
    qpts[:, 0] = query.size[q, 0] - 1 - qpts[:, 0]
    return qpts, flipped[1], flipped[2], True


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        return cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(img[..., :3], np.uint8)


def draw_matches(
    query_img: np.ndarray,
    gallery_img: np.ndarray,
    query_pts: np.ndarray,
    gallery_pts: np.ndarray,
    *,
    height: int = 160,
) -> np.ndarray:
    """Side-by-side RGB uint8 image of the two crops, both scaled to `height`, a line per inlier match.

    Args:
        query_img, gallery_img: RGB (or grayscale) uint8 crops.
        query_pts, gallery_pts: [m, 2] matched points in the crops' own pixels (as `match_photos` returns).
        height: output height in pixels.
    """
    left, right = _rgb(query_img), _rgb(gallery_img)
    scales = [height / max(img.shape[0], 1) for img in (left, right)]
    left, right = (
        cv2.resize(img, (max(1, round(img.shape[1] * s)), height), interpolation=cv2.INTER_AREA)
        for img, s in zip((left, right), scales)
    )
    canvas = np.ascontiguousarray(np.concatenate([left, right], axis=1))
    src = np.asarray(query_pts, np.float64).reshape(-1, 2) * scales[0]
    dst = np.asarray(gallery_pts, np.float64).reshape(-1, 2) * scales[1] + [left.shape[1], 0]
    hues = np.linspace(0, 179, max(len(src), 1), endpoint=False).astype(np.uint8)
    colours = cv2.cvtColor(
        np.stack([hues, np.full_like(hues, 220), np.full_like(hues, 255)], 1)[None], cv2.COLOR_HSV2RGB
    )
    for (x1, y1), (x2, y2), colour in zip(src, dst, colours[0]):
        p, q = (round(x1), round(y1)), (round(x2), round(y2))
        cv2.line(canvas, p, q, tuple(int(c) for c in colour), 1, cv2.LINE_AA)
        cv2.circle(canvas, p, 2, tuple(int(c) for c in colour), -1, cv2.LINE_AA)
        cv2.circle(canvas, q, 2, tuple(int(c) for c in colour), -1, cv2.LINE_AA)
    return canvas
