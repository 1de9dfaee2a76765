"""Benchmark: whale-matcher's batched `verify_pairs` vs a plain per-pair OpenCV loop, pairs verified per second.

Synthetic textured crops (256 × 160 px, 400 RootSIFT keypoints, mirrored features too): each query is
verified against K candidates, a few of them warped copies of it (rotation, scale, shift), the rest
other textures. The reference is the recipe people write: per pair, `cv2.BFMatcher.knnMatch(k=2)` +
Lowe ratio test + `cv2.estimateAffinePartial2D` (RANSAC), both orientations when mirror is on. Every
method runs single-threaded per process (BLAS and OpenCV at one thread), so rates are per core;
"workers 2" uses two processes. Agreement = share of pairs whose inlier counts are within ±1 of the
reference's. The projection is Kaggle size: 27,956 queries × K=50 × 2 regions, mirror on.

    python benchmarks/matching.py            # 40 queries × 50 candidates (≈ 1 min on 2 cores)
    python benchmarks/matching.py --quick    # 12 × 50
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _common import markdown_table
from threadpoolctl import threadpool_limits

from whale_matcher import MatcherConfig, extract_features, verify_pairs
from whale_matcher._batch import query_evidence, ratio_matches

KAGGLE_PAIRS = 27_956 * 50 * 2  # queries × candidates × regions


def texture(seed: int, width: int = 256, height: int = 160) -> np.ndarray:
    """Band-passed noise plus random ellipses and lines (as tests/matcher make)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width), np.float32)
    for sigma, weight in ((1.5, 50.0), (4.0, 90.0)):
        noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma)
        img += weight * noise / noise.std()
    for _ in range(25):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(3, 20)), int(rng.integers(3, 20)))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(-120, 120)), -1)
    for _ in range(12):
        a = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        b = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(img, a, b, float(rng.uniform(-120, 120)), int(rng.integers(1, 4)))
    return np.clip(img + 128.0, 0, 255).astype(np.uint8)


def make_crops(folder: Path, n_query: int, n_other: int, positives: int, seed: int):
    """Query crops, a gallery of `positives` warped copies per query + `n_other` other textures, and pairs."""
    rng = np.random.default_rng(seed)
    queries = {f"q{i}": texture(seed * 100_000 + i) for i in range(n_query)}
    gallery = {f"o{i}": texture(seed * 100_000 + 50_000 + i) for i in range(n_other)}
    for name, img in queries.items():
        for p in range(positives):
            model = cv2.getRotationMatrix2D((128, 80), rng.uniform(-15, 15), rng.uniform(0.8, 1.1))
            model[:, 2] += rng.uniform(-10, 10, 2)
            warped = cv2.warpAffine(img, model, (256, 160), borderMode=cv2.BORDER_REFLECT)
            gallery[f"{name}_w{p}"] = warped[:, ::-1] if p == 0 else warped  # one mirrored positive each
    paths = {}
    for name, img in {**queries, **gallery}.items():
        paths[name] = folder / f"{name}.png"
        cv2.imwrite(str(paths[name]), img)
    return list(queries), list(gallery), paths


def reference_orientation(qxy, qdesc, gxy, gdesc, cfg: MatcherConfig) -> tuple[int, int]:
    """(matches, inliers): BFMatcher.knnMatch(k=2) + ratio test + estimateAffinePartial2D, one pair."""
    if len(qdesc) == 0 or len(gdesc) < 2:
        return 0, 0
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(qdesc, gdesc, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < cfg.ratio * m[1].distance]
    if len(good) < cfg.min_matches:
        return len(good), 0
    src, dst = qxy[[m.queryIdx for m in good]], gxy[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)
    _, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=cfg.reproj_px)
    return len(good), 0 if mask is None else int(mask.sum())


def reference_loop(query, gallery, pairs, cfg: MatcherConfig) -> np.ndarray:
    """Inliers per pair by the per-pair loop (mirrored query too; ties keep the plain orientation)."""
    out = np.zeros(len(pairs), np.int64)
    for n, (q, g) in enumerate(pairs):
        plain = reference_orientation(*query.keypoints(q), *gallery.keypoints(g), cfg)[1]
        flipped = reference_orientation(*query.mirrored.keypoints(q), *gallery.keypoints(g), cfg)[1]
        out[n] = max(plain, flipped)
    return out


def profile(query, gallery, pairs, cfg: MatcherConfig) -> list[tuple[str, float]]:
    """Milliseconds per pair of each part of the batched path (one process), by re-running the parts."""
    firsts = np.unique(pairs[:, 0])
    groups = [pairs[pairs[:, 0] == q, 1] for q in firsts]
    descs = [[query.keypoints(q)[1], query.mirrored.keypoints(q)[1]] for q in firsts]
    stacked = [np.concatenate([*d, np.zeros((0, 128), np.float32)]) for d in descs]
    blocks = [gallery.desc[np.concatenate([np.arange(*gallery.offsets[g : g + 2]) for g in group])] for group in groups]
    parts = {}
    start = time.perf_counter()
    for q, block in zip(stacked, blocks):
        q @ block.T
    parts["matmul (query × candidates, both orientations; BLAS fp32)"] = time.perf_counter() - start
    start = time.perf_counter()
    for d, group in zip(descs, groups):
        ratio_matches(d, gallery, group, cfg)
    parts["gather + top-2 + ratio test"] = time.perf_counter() - start - parts[next(iter(parts))]
    start = time.perf_counter()
    for q, group in zip(firsts, groups):
        query_evidence(query, int(q), gallery, group, cfg)
    total = time.perf_counter() - start
    parts["RANSAC + per-pair bookkeeping"] = total - sum(parts.values())
    parts["total"] = total
    return [(name, seconds / len(pairs) * 1e3) for name, seconds in parts.items()]


def profile_reference(query, gallery, pairs, cfg: MatcherConfig) -> list[tuple[str, float]]:
    """Milliseconds per pair of the loop's knnMatch (both orientations) alone, and the rest."""
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    start = time.perf_counter()
    for q, g in pairs:
        for feats in (query, query.mirrored):
            matcher.knnMatch(feats.keypoints(q)[1], gallery.keypoints(g)[1], k=2)
    knn = time.perf_counter() - start
    start = time.perf_counter()
    reference_loop(query, gallery, pairs, cfg)
    total = time.perf_counter() - start
    rows = [("knnMatch (both orientations)", knn), ("ratio test + RANSAC + Python per match", total - knn)]
    return [(name, seconds / len(pairs) * 1e3) for name, seconds in [*rows, ("total", total)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 queries")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--positives", type=int, default=3, help="warped copies of each query among its candidates")
    parser.add_argument("--reference-queries", type=int, default=20, help="queries the slow reference loop runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.queries, args.reference_queries = 12, 6
    cfg = MatcherConfig()
    threadpool_limits(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    n_other = args.candidates * 2
    with tempfile.TemporaryDirectory() as tmp:
        qnames, gnames, paths = make_crops(Path(tmp), args.queries, n_other, args.positives, args.seed)
        start = time.perf_counter()
        query = extract_features(qnames, [paths[n] for n in qnames], cfg.replace(workers=2), progress=False)
        gallery = extract_features(gnames, [paths[n] for n in gnames], cfg.replace(workers=2), progress=False)
        extract_s = time.perf_counter() - start
    pairs = []
    for q, name in enumerate(qnames):
        own = [gnames.index(f"{name}_w{p}") for p in range(args.positives)]
        others = rng.choice(n_other, args.candidates - len(own), replace=False)
        pairs += [(q, g) for g in [*own, *others]]
    pairs = np.array(pairs)
    photos = len(qnames) + len(gnames)
    print(f"{args.queries} queries × {args.candidates} candidates = {len(pairs):,} pairs, 400 RootSIFT, mirror on")
    print(f"(extraction: {photos} crops × 2 orientations in {extract_s:.1f} s with 2 workers)\n")

    ref_pairs = pairs[pairs[:, 0] < args.reference_queries]
    start = time.perf_counter()
    ref_inliers = reference_loop(query, gallery, ref_pairs, cfg)
    rates = {"per-pair loop (BFMatcher.knnMatch + RANSAC)": (len(ref_pairs) / (time.perf_counter() - start), 1)}
    answers = {}
    for workers in (1, 2):
        best = np.inf
        for _ in range(2):
            start = time.perf_counter()
            answers[workers] = verify_pairs(query, gallery, pairs, cfg.replace(workers=workers), progress=False)
            best = min(best, time.perf_counter() - start)
        rates[f"verify_pairs, workers {workers}"] = (len(pairs) / best, workers)
    ours = answers[1].inliers[pairs[:, 0] < args.reference_queries]
    agree = float(np.mean(np.abs(ours - ref_inliers) <= 1))
    same = bool(all((answers[1].inliers == answers[2].inliers) & (answers[1].matches == answers[2].matches)))
    base = rates["per-pair loop (BFMatcher.knnMatch + RANSAC)"][0]
    rows = []
    for name, (rate, cores) in rates.items():
        per_core = rate / cores
        two = KAGGLE_PAIRS / (per_core * 2) / 3600
        sixteen = KAGGLE_PAIRS / (per_core * 16) / 3600
        rows.append([name, cores, rate, f"{rate / base:.1f}×", f"{two:.2f} h", f"{sixteen:.2f} h"])
    header = ["method", "processes", "pairs/s", "vs loop", "Kaggle, 2 cores", "Kaggle, 16 cores"]
    print(markdown_table(header, rows))
    print(
        f"\nagreement with the loop (inliers within ±1): {agree:.1%} of {len(ref_pairs):,} pairs; "
        f"workers 2 identical to workers 1: {same}"
    )
    positives = answers[1].inliers[np.isin(pairs[:, 1], [gnames.index(n) for n in gnames if "_w" in n])]
    print(
        f"inliers: positives median {np.median(positives):.0f}, others max "
        f"{answers[1].inliers[answers[1].inliers < 30].max()}\n"
    )
    print("Where the time goes (one process, milliseconds per pair):")
    rows = [["verify_pairs: " + n, f"{v:.3f}"] for n, v in profile(query, gallery, pairs, cfg)]
    rows += [["loop: " + n, f"{v:.3f}"] for n, v in profile_reference(query, gallery, ref_pairs[:300], cfg)]
    print(markdown_table(["part", "ms / pair"], rows))


if __name__ == "__main__":
    main()
