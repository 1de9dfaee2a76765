"""Benchmark: whale-matcher's batched `verify_pairs` vs a plain per-pair OpenCV loop, pairs verified per second.

Synthetic textured crops (256 × 160 px, 400 RootSIFT keypoints, the query matched flipped too): each query is
verified against K candidates, a few of them warped copies of it (rotation, scale, shift), the rest
other textures. The reference is the recipe people write: per pair, `cv2.BFMatcher.knnMatch(k=2)` +
Lowe ratio test + `cv2.estimateAffinePartial2D` (RANSAC), both orientations when mirror is on. Every
method runs single-threaded per process (BLAS, OpenCV and torch at one thread), so rates are per core;
"workers 2" uses two processes, with the matmul `auto` picks on this CPU (bf16 only where it is native).
Agreement = share of pairs whose inlier counts are within ±1 of the reference's. The projection is Kaggle
size: 27,956 queries × K=50 × 2 regions, mirror on.

    python benchmarks/matching.py            # 40 queries × 50 candidates (≈ 1 min on 2 cores)
    python benchmarks/matching.py --quick    # 12 × 50
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from _common import machine_line, markdown_table, median_seconds
from threadpoolctl import threadpool_limits

from whale_core.cpu import cpu_has_native_bf16
from whale_matcher import MatcherConfig, extract_features, verify_pairs
from whale_matcher.reference import reference_pairs
from whale_matcher.synthetic import texture

KAGGLE_PAIRS = 27_956 * 50 * 2  # queries × candidates × regions


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


def reference_loop(query, gallery, pairs, cfg: MatcherConfig) -> np.ndarray:
    """Inliers per pair by the per-pair loop (`whale_matcher.reference`: both orientations, ties to plain)."""
    return reference_pairs(query, gallery, pairs, cfg)[1]


def profile(query, gallery, pairs, cfg: MatcherConfig, top: int = 8) -> list[tuple[str, float]]:
    """Milliseconds per pair (one process) of the functions where `verify_pairs` spends most time (cProfile)."""
    profiler = cProfile.Profile()
    profiler.enable()
    verify_pairs(query, gallery, pairs, cfg, progress=False)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(row[2] for row in stats.values())
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    named = [(f"{Path(file).name}:{line} {name}" if line else name, row[2]) for (file, line, name), row in rows]
    return [(name, seconds / len(pairs) * 1e3) for name, seconds in [*named, ("total (all functions)", total)]]


def profile_reference(query, gallery, pairs, cfg: MatcherConfig) -> list[tuple[str, float]]:
    """Milliseconds per pair of the loop's knnMatch (both orientations) alone, and the rest (medians of 3 warm runs:
    single timings of the two, taken one after the other, differed by more than the rest)."""
    matcher = cv2.BFMatcher(cv2.NORM_L2)

    def knn_only() -> None:
        for q, g in pairs:
            for _, desc in (query.keypoints(q), query.flipped_keypoints(q)):
                matcher.knnMatch(desc, gallery.keypoints(g)[1], k=2)

    knn = median_seconds(knn_only, repeats=3)
    total = median_seconds(lambda: reference_loop(query, gallery, pairs, cfg), repeats=3)
    rows = [("knnMatch (both orientations)", knn), ("ratio test + RANSAC + Python per match", total - knn)]
    return [(name, seconds / len(pairs) * 1e3) for name, seconds in [*rows, ("total", total)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 queries")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--positives", type=int, default=3, help="warped copies of each query among its candidates")
    parser.add_argument("--reference-queries", type=int, default=20, help="queries the slow reference loop runs")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of every method (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine_line())
    if args.quick:
        args.queries, args.reference_queries = 12, 6
    cfg = MatcherConfig()
    threadpool_limits(1)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
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
    loop = "per-pair loop (BFMatcher.knnMatch + RANSAC)"
    auto = "bf16" if cpu_has_native_bf16() else "fp32"  # what `matmul: auto` takes on this CPU
    runs = [("fp32", 1, ""), ("bf16", 1, ""), (auto, 2, " (auto)")]
    methods = {f"verify_pairs {m}{note}, workers {w}": (m, w) for m, w, note in runs}
    seconds, answers = {name: np.inf for name in [loop, *methods]}, {}
    for _ in range(args.repeats):  # interleaved, best of the repeats: the machine is shared
        start = time.perf_counter()
        ref_inliers = reference_loop(query, gallery, ref_pairs, cfg)
        seconds[loop] = min(seconds[loop], time.perf_counter() - start)
        for name, (matmul, workers) in methods.items():
            start = time.perf_counter()
            answers[name] = verify_pairs(
                query, gallery, pairs, cfg.replace(matmul=matmul, workers=workers), progress=False
            )
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    rates = {loop: (len(ref_pairs) / seconds[loop], 1)}
    rates |= {name: (len(pairs) / seconds[name], workers) for name, (_, workers) in methods.items()}
    rows = []
    for name, (rate, cores) in rates.items():
        per_core = rate / cores
        two = KAGGLE_PAIRS / (per_core * 2) / 3600
        sixteen = KAGGLE_PAIRS / (per_core * 16) / 3600
        rows.append([name, cores, rate, f"{rate / rates[loop][0]:.1f}×", f"{two:.2f} h", f"{sixteen:.2f} h"])
    header = ["method", "processes", "pairs/s", "vs loop", "Kaggle, 2 cores", "Kaggle, 16 cores"]
    print(markdown_table(header, rows))
    fp32, bf16 = answers["verify_pairs fp32, workers 1"], answers["verify_pairs bf16, workers 1"]
    in_ref = pairs[:, 0] < args.reference_queries
    for name, ev in answers.items():
        agree = float(np.mean(np.abs(ev.inliers[in_ref] - ref_inliers) <= 1))
        same = bool(np.array_equal(ev.inliers, fp32.inliers) and np.array_equal(ev.matches, fp32.matches))
        print(
            f"{name}: inliers within ±1 of the loop on {agree:.1%} of {len(ref_pairs):,} pairs; "
            f"identical to fp32 workers 1 on all {len(pairs):,}: {same}"
        )
    positives = bf16.inliers[np.isin(pairs[:, 1], [gnames.index(n) for n in gnames if "_w" in n])]
    print(f"inliers: positives median {np.median(positives):.0f}, others max {bf16.inliers[bf16.inliers < 30].max()}\n")
    print("Where the time goes (one process, milliseconds per pair):")
    rows = [
        [f"verify_pairs {auto}: " + n, f"{v:.3f}"] for n, v in profile(query, gallery, pairs, cfg.replace(matmul=auto))
    ]
    rows += [["loop: " + n, f"{v:.3f}"] for n, v in profile_reference(query, gallery, ref_pairs[:300], cfg)]
    print(markdown_table(["part", "ms / pair"], rows))


if __name__ == "__main__":
    main()
