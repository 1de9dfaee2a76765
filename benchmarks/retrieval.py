"""Benchmark: whale-retrieval's top-5 vs the reference (sklearn cosine NearestNeighbors + per-individual max).

Random clustered embeddings at Kaggle sizes (51,033 gallery × 27,956 queries, ~15k individuals,
20% of queries from unseen individuals). Each method runs in its own subprocess so its wall time
and peak RSS are its own; the table also says whether the five answers per query are identical.

    python benchmarks/retrieval.py                 # full size, 512-d and 4608-d
    python benchmarks/retrieval.py --quick         # 5k × 2k, 256-d, seconds
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from whale_core import atomic_path

log = logging.getLogger("benchmarks.retrieval")
THRESHOLD = 0.55


def make_data(n_gallery: int, n_query: int, dim: int, n_individuals: int, seed: int):
    """Unit centres; gallery/queries = centre + isotropic noise of norm ≈ 0.8; 20% of queries unseen."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_individuals + n_individuals // 4, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    gallery_ids = np.concatenate([np.arange(n_individuals), rng.integers(0, n_individuals, n_gallery - n_individuals)])
    gallery = centres[gallery_ids] + rng.standard_normal((n_gallery, dim), dtype=np.float32) * (0.8 / np.sqrt(dim))
    unseen = rng.random(n_query) < 0.2
    unseen_ids = rng.integers(n_individuals, len(centres), n_query)
    query_ids = np.where(unseen, unseen_ids, rng.integers(0, n_individuals, n_query))
    query = centres[query_ids] + rng.standard_normal((n_query, dim), dtype=np.float32) * (0.8 / np.sqrt(dim))
    return query, gallery, [f"w{i}" for i in gallery_ids]


def reference_top5(query, gallery, labels, n_neighbors: int) -> list[list[str]]:
    """The reference recipe: sklearn brute-force cosine kNN, per-individual max, new_individual by threshold."""
    from sklearn.neighbors import NearestNeighbors

    from whale_retrieval import insert_new_individual, most_frequent_ids, rank_individuals

    model = NearestNeighbors(n_neighbors=n_neighbors, metric="cosine").fit(gallery)
    distances, indices = model.kneighbors(query)
    ranked = rank_individuals((1.0 - distances).astype(np.float32), indices, labels, 5)
    return insert_new_individual(ranked, THRESHOLD, pad_ids=most_frequent_ids(labels, 6))


def ours_top5(query, gallery, labels, n_neighbors: int) -> list[list[str]]:
    from whale_retrieval import predict_top5

    return predict_top5(query, gallery, labels, THRESHOLD, k_neighbors=n_neighbors)


def worker(args: argparse.Namespace) -> None:
    """Run one method in this process and save its answers; the parent reads time and peak RSS."""
    query, gallery, labels = make_data(args.n_gallery, args.n_query, args.dim, args.n_individuals, args.seed)
    start = time.perf_counter()
    method = ours_top5 if args.worker == "ours" else reference_top5
    answers = method(query, gallery, labels, args.ours_neighbors if args.worker == "ours" else args.ref_neighbors)
    seconds = time.perf_counter() - start
    with atomic_path(args.out) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(answers, dtype=str))
    print(f"{seconds:.3f}")


def run_method(method: str, dim: int, args: argparse.Namespace, out: Path) -> tuple[float, float, np.ndarray]:
    """Wall seconds (search + ranking, data generation excluded), peak RSS in GiB, answers."""
    flags = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in ("n_gallery", "n_query", "n_individuals", "seed")]
    flags += [f"--ours-neighbors={args.ours_neighbors}", f"--ref-neighbors={args.ref_neighbors}"]
    cmd = [sys.executable, __file__, f"--worker={method}", f"--dim={dim}", f"--out={out}", *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    peak_kib = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return float(done.stdout.strip().splitlines()[-1]), peak_kib / 2**20, np.load(out, allow_pickle=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 × 2,000 at 256-d")
    parser.add_argument("--n-gallery", type=int, default=51_033)
    parser.add_argument("--n-query", type=int, default=27_956)
    parser.add_argument("--n-individuals", type=int, default=15_587)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 4608])
    parser.add_argument("--ours-neighbors", type=int, default=100)
    parser.add_argument("--ref-neighbors", type=int, default=850, help="the reference recipe's kNN size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.quick:
        args.n_gallery, args.n_query, args.n_individuals, args.dims = 5_000, 2_000, 1_500, [256]
    # peak RSS of children is a running maximum: run the smaller-memory method first at each size
    print(f"gallery {args.n_gallery:,} × queries {args.n_query:,}, {args.n_individuals:,} individuals")
    print("| dim | method | neighbours | wall s | peak RSS GiB | speed-up | top-5 identical |")
    print("|---:|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for dim in args.dims:
            ours_s, ours_gib, ours = run_method("ours", dim, args, Path(tmp) / "ours.npy")
            ref_s, ref_gib, ref = run_method("reference", dim, args, Path(tmp) / "ref.npy")
            same = bool(np.array_equal(ours, ref))
            differing = int((ours != ref).any(axis=1).sum())
            print(f"| {dim} | sklearn reference | {args.ref_neighbors} | {ref_s:.1f} | {ref_gib:.2f} | 1.0× | |")
            print(
                f"| {dim} | whale-retrieval (FAISS flat) | {args.ours_neighbors} | {ours_s:.1f} | {ours_gib:.2f} "
                f"| {ref_s / ours_s:.1f}× | {'yes' if same else f'no ({differing} queries differ)'} |"
            )


if __name__ == "__main__":
    main()
