"""The outline of a dorsal fin as a descriptor: separated from water and sky, traced from the tip, curvature.

A fin's identity lives in its outline — the nicks and notches of the trailing edge, the shape of the tip —
where keypoint detectors find little. The field's fin matchers (CurvRank in Wildbook, finFindR) trace the
edge and compare its curvature; this module does the same without a trained model:

1. **Separate** the animal from water and sky with OpenCV's GrabCut, seeded by the crop: the top rows and the
   upper side columns are background (sea or sky above a fin), the centre probably animal. The largest
   connected piece of foreground, holes filled, is the silhouette.
2. **Trace** its outer contour from the tip (the highest point) down both sides for a fixed arc length (in
   units of the crop height, so scale drops out), resampled at equal arc-length steps. A side that reaches
   the crop border earlier (a base hidden by water) is shorter: matching uses what both photos show.
3. **Describe** each traced point by its integral curvature at several radii (CurvRank's integral area
   invariant): the share of a disk around the point that lies inside the silhouette. 0.5 on a straight
   edge, less on a convex tip, more inside a nick; invariant to rotation, robust to pixel noise.

Where there is no fin to trace — no silhouette (flat colour), a silhouette filling the crop, or a tip that
does not stand out (a beluga's ridge) — the outline is *missing*: `traced` is False and its pairs get no
outline evidence at all (not evidence for "different"). `outline_distance` compares traced outlines.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

#: Points per traced side: the arc from the tip is sampled at `ARC_LENGTH / SIDE_POINTS` crop heights.
SIDE_POINTS = 48
#: Arc length traced down each side of the tip, in crop heights.
ARC_LENGTH = 1.2
#: Disk radii of the integral curvature, in crop heights (nick-sized … fin-sized).
RADII = (0.04, 0.08, 0.16)
#: The silhouette is separated at this height (pixels; the crop is resized to it, aspect kept).
WORK_HEIGHT = 160
#: A fin: the contour drops this far below the tip (crop heights) on both sides …
MIN_PROMINENCE = 0.3
#: … one side within this horizontal distance of the tip per unit of drop, the other (a broad-based fin's leading
#: edge) within `MAX_BASE_RUN` (a ridge or a back is flatter on both).
MAX_SLOPE_RUN, MAX_BASE_RUN = 2.5, 6.0
#: Contour pixels from the tip (in crop heights) where touching the crop's side does not end a traced side.
TIP_BORDER_GRACE = 0.15
#: Fewest points per side a comparison needs (shorter sides: the outline is missing).
MIN_SIDE_POINTS = 16


@dataclasses.dataclass(frozen=True)
class Outline:
    """The traced outline of one crop.

    Attributes:
        sides: float32 [2, SIDE_POINTS, len(RADII)] integral curvature along the two sides, tip first (side 0
            goes to the left of the image, side 1 to the right); rows past `lengths` are 0.
        lengths: int32 [2] traced points per side (0 when not traced).
    """

    sides: np.ndarray
    lengths: np.ndarray

    @property
    def traced(self) -> bool:
        """Whether a fin outline was found (both sides traced)."""
        return bool(self.lengths.min() > 0)

    @classmethod
    def missing(cls) -> Outline:
        return cls(np.zeros((2, SIDE_POINTS, len(RADII)), np.float32), np.zeros(2, np.int32))


def silhouette(rgb: np.ndarray, iterations: int = 4) -> tuple[np.ndarray, np.ndarray] | None:
    """The animal's mask (uint8 0/1, holes filled) in a crop and its outer contour (int [N, 2] x, y), or None
    where GrabCut separates nothing usable.

    Args:
        rgb: uint8 [H, W, 3] crop, about `WORK_HEIGHT` pixels tall.
        iterations: GrabCut rounds.
    """
    height, width = rgb.shape[:2]
    if height < 16 or width < 16 or float(rgb.std()) < 2.0:  # flat colour: nothing to separate
        return None
    seed = np.full((height, width), cv2.GC_PR_BGD, np.uint8)
    seed[int(0.15 * height) :, int(0.1 * width) : int(0.9 * width)] = cv2.GC_PR_FGD
    seed[: max(2, int(0.04 * height))] = cv2.GC_BGD
    upper = slice(0, height // 2)
    seed[upper, : max(2, int(0.03 * width))] = cv2.GC_BGD
    seed[upper, width - max(2, int(0.03 * width)) :] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means starts from OpenCV's random generator: the same crop, the same mask
    try:
        cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), seed, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # one colour class only: GrabCut cannot fit its two models
        return None
    mask = np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.uint8)
    share = mask.mean()
    if not 0.05 <= share <= 0.9:
        return None
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled, max(contours, key=len)[:, 0, :]


def _resample(points: np.ndarray, step: float, n_max: int) -> np.ndarray:
    """Points at equal arc-length `step` along a polyline (at most `n_max`), starting at its first point."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    targets = np.arange(n_max) * step
    targets = targets[targets <= arc[-1]]
    return np.column_stack([np.interp(targets, arc, points[:, 0]), np.interp(targets, arc, points[:, 1])])


def _side_paths(contour: np.ndarray, tip: int, shape: tuple[int, int]) -> list[np.ndarray]:
    """The contour walked from the tip in both directions until it reaches the crop border; left side first."""
    height, width = shape
    on_border = (contour[:, 0] <= 1) | (contour[:, 0] >= width - 2) | (contour[:, 1] >= height - 2)
    n = len(contour)
    paths = []
    near_tip = int(TIP_BORDER_GRACE * height)  # a falcate tip may touch the box's side: walk on past it
    for direction in (1, -1):
        order = (tip + direction * np.arange(n // 2)) % n
        stop = near_tip + np.flatnonzero(on_border[order][near_tip:])
        paths.append(contour[order[: stop[0] + 1 if len(stop) else len(order)]].astype(np.float64))
    paths.sort(key=lambda p: float(p[min(len(p) - 1, 5), 0]))  # the side whose first steps go left comes first
    return paths


def _slope_run(path: np.ndarray, height: int) -> float:
    """Horizontal distance from the tip at which one side has dropped `MIN_PROMINENCE` crop heights (inf: never)."""
    deep = np.flatnonzero(path[:, 1] - path[0, 1] >= MIN_PROMINENCE * height)
    return float(abs(path[deep[0], 0] - path[0, 0])) if len(deep) else np.inf


def _is_fin(paths: list[np.ndarray], height: int) -> bool:
    """Whether the tip stands out like a fin: both sides drop `MIN_PROMINENCE` crop heights, one (the trailing
    edge) within `MAX_SLOPE_RUN` times that drop, the other (a broad leading edge) within `MAX_BASE_RUN` times."""
    runs = sorted(_slope_run(path, height) / (MIN_PROMINENCE * height) for path in paths)
    return runs[0] <= MAX_SLOPE_RUN and runs[1] <= MAX_BASE_RUN


def disk_share(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """float32 map: at each pixel, the share of a disk of `radius_px` around it that lies inside `mask`."""
    r = max(1, int(round(radius_px)))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).astype(np.float32)
    return cv2.filter2D(mask.astype(np.float32), -1, disk / disk.sum(), borderType=cv2.BORDER_CONSTANT)


def integral_curvature(mask: np.ndarray, points: np.ndarray, radius_px: float) -> np.ndarray:
    """Share of a disk of `radius_px` around each point that lies inside `mask` (CurvRank's invariant)."""
    return _sample(disk_share(mask, radius_px), points)


def _sample(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, image.shape[1] - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, image.shape[0] - 1)
    return image[ys, xs]


def trace_outline(rgb: np.ndarray) -> Outline:
    """The fin outline of a crop (uint8 RGB, any size), or `Outline.missing()` where there is no fin to trace."""
    scale = WORK_HEIGHT / max(rgb.shape[0], 1)
    size = (max(16, round(rgb.shape[1] * scale)), WORK_HEIGHT)
    work = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    found = silhouette(work)
    if found is None:
        return Outline.missing()
    mask, contour = found
    tip = int(np.argmin(contour[:, 1] * 1000 + np.abs(contour[:, 0] - contour[:, 0].mean())))
    if contour[tip, 1] <= 1:  # the silhouette reaches the top edge: the tip is cut off
        return Outline.missing()
    paths = _side_paths(contour, tip, mask.shape)
    if not _is_fin(paths, WORK_HEIGHT):
        return Outline.missing()
    sides = np.zeros((2, SIDE_POINTS, len(RADII)), np.float32)
    step = ARC_LENGTH * WORK_HEIGHT / SIDE_POINTS
    points = [_resample(path, step, SIDE_POINTS) for path in paths]
    lengths = np.array([len(p) for p in points], np.int32)
    if lengths.min() < MIN_SIDE_POINTS:
        return Outline.missing()
    for k, radius in enumerate(RADII):  # one disk map per radius, sampled on both sides
        share = disk_share(mask, radius * WORK_HEIGHT)
        for s, side_points in enumerate(points):
            sides[s, : len(side_points), k] = _sample(share, side_points)
    return Outline(sides, lengths)


def _dtw(a: np.ndarray, b: np.ndarray, m: np.ndarray, band: int) -> np.ndarray:
    """Dynamic time warping cost of many sequence pairs, both ends fixed, within a Sakoe–Chiba band.

    Args:
        a, b: float32 [P, L, S] sequences; pair p uses its first `m[p]` points of each.
        m: int [P] compared length per pair (≥ 1).
        band: the largest index offset |i − j| a warping path may take.

    Returns:
        float64 [P] path cost divided by `m`: the mean L1 distance of aligned points.
    """
    n_pairs, length, _ = a.shape
    # Pairs on the last axis: each cell of the recursion is one contiguous vector operation over all pairs.
    a_t, b_t = np.ascontiguousarray(a.transpose(1, 2, 0)), np.ascontiguousarray(b.transpose(1, 2, 0))
    cost = np.abs(a_t[:, None] - b_t[None, :]).sum(axis=2)
    acc = np.full((length + 1, length + 1, n_pairs), np.inf, np.float32)
    acc[0, 0] = 0.0
    for i in range(1, length + 1):
        for j in range(max(1, i - band), min(length, i + band) + 1):
            best = np.minimum(np.minimum(acc[i - 1, j - 1], acc[i - 1, j]), acc[i, j - 1])
            np.add(cost[i - 1, j - 1], best, out=acc[i, j])
    return acc[m, m, np.arange(n_pairs)].astype(np.float64) / m


def outline_distance(
    a_sides: np.ndarray, a_lengths: np.ndarray, b_sides: np.ndarray, b_lengths: np.ndarray, *, chunk: int = 4096
) -> np.ndarray:
    """Distance between the outlines of many (a, b) pairs; NaN where either outline is missing.

    Each side of `a` is aligned by dynamic time warping (tolerating a warp of a tenth of the trace) with a side of
    `b` over the arc both traced (a base hidden in one photo is left out), tip to tip. Both pairings of sides
    are tried — same side, and crossed, which is the same fin photographed from its other flank — and the
    better kept.

    Args:
        a_sides, b_sides: float32 [P, 2, SIDE_POINTS, len(RADII)] (`Outline.sides` of each pair's photos).
        a_lengths, b_lengths: int [P, 2] traced points per side; 0 = not traced.
        chunk: pairs aligned at once (memory ~ chunk × SIDE_POINTS² × 8 bytes).

    Returns:
        float64 [P]: the mean L1 curvature difference of aligned points (0 = identical), NaN if not comparable.
    """
    n_pairs = len(a_sides)
    out = np.full(n_pairs, np.nan)
    band = max(2, SIDE_POINTS // 10)
    for start in range(0, n_pairs, chunk):
        part = slice(start, min(start + chunk, n_pairs))
        a, la, b, lb = a_sides[part], a_lengths[part], b_sides[part], b_lengths[part]
        pairings = []
        for sa, sb in (((0, 1), (0, 1)), ((0, 1), (1, 0))):
            total, points = 0.0, 0
            for x, y in zip(sa, sb):
                m = np.minimum(la[:, x], lb[:, y]).astype(np.int64)
                total = total + _dtw(a[:, x], b[:, y], np.maximum(m, 1), band) * m
                points = points + m
            with np.errstate(invalid="ignore", divide="ignore"):
                pairings.append(np.where(points > 0, total / np.maximum(points, 1), np.inf))
        best = np.minimum(*pairings)
        comparable = (np.minimum(la, lb) >= MIN_SIDE_POINTS).all(axis=1)
        out[part] = np.where(comparable, best, np.nan)
    return out
