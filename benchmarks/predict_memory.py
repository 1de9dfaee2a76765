"""Benchmark: peak memory (RSS) of the predict path at Kaggle sizes.

Writes 9 ensemble members' embeddings (512-d each → 4608-d) of 51,033 train and 27,956 test photos in
train_embedder's layout (`<root>/<model>/fold<k>/{train,test}.npz`), then runs in a child process what
the predict stage does: `ensemble_embeddings` (load, L2-normalise, concatenate, re-normalise) for the
gallery and the queries → `knn_search` → `rank_individuals` → `insert_new_individual`. The peak is the
child's own `ru_maxrss` (os.wait4); the inputs themselves are 1.47 GiB of float32 at 4608-d.

    python benchmarks/predict_memory.py [--n-train 51033] [--n-test 27956] [--members 9] [--backend auto]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def write_members(root: Path, n_train: int, n_test: int, members: int, dim: int) -> None:
    from whale_embedder import save_embeddings

    rng = np.random.default_rng(0)
    for member in range(members):
        for split, n in (("train", n_train), ("test", n_test)):
            images = [f"{split}{i:06d}.jpg" for i in range(n)]
            emb = rng.standard_normal((n, dim), dtype=np.float32)
            save_embeddings(root / f"m{member}" / "fold0" / f"{split}.npz", images, emb)


def worker(args: argparse.Namespace) -> None:
    """The predict path, in this process (the parent reads its peak RSS)."""
    from whale_reid.answers.ensemble import ensemble_embeddings
    from whale_retrieval import KnnConfig, insert_new_individual, knn_search, most_frequent_ids, rank_individuals

    members = pd.DataFrame({"model": [f"m{i}" for i in range(args.members)], "fold": [0] * args.members})
    train_images = pd.Series([f"train{i:06d}.jpg" for i in range(args.n_train)])
    test_images = pd.Series([f"test{i:06d}.jpg" for i in range(args.n_test)])
    labels = [f"w{i % 15_587}" for i in range(args.n_train)]
    start = time.perf_counter()
    gallery = ensemble_embeddings(members, "train", train_images, args.root)
    queries = ensemble_embeddings(members, "test", test_images, args.root)
    loaded = time.perf_counter()
    config = KnnConfig(backend=args.backend)
    sims, idx = knn_search(queries, gallery, 100, config=config, gallery_labels=labels)  # as the predict stage
    ranked = rank_individuals(sims, idx, labels, 5)
    answers = insert_new_individual(ranked, 0.55, pad_ids=most_frequent_ids(labels, 6))
    assert len(answers) == args.n_test
    print(f"{loaded - start:.3f} {time.perf_counter() - loaded:.3f} {gallery.shape[1]}")


def run_child(args: argparse.Namespace, root: Path) -> tuple[float, float, float, int]:
    cmd = [sys.executable, __file__, "--worker", f"--root={root}", f"--backend={args.backend}"]
    cmd += [f"--n-train={args.n_train}", f"--n-test={args.n_test}", f"--members={args.members}"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as child:
        stdout = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"predict worker failed: exit code {os.waitstatus_to_exitcode(status)}")
    load_s, search_s, dim = stdout.split()
    return usage.ru_maxrss / 2**20, float(load_s), float(search_s), int(dim)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=51_033)
    parser.add_argument("--n-test", type=int, default=27_956)
    parser.add_argument("--members", type=int, default=9)
    parser.add_argument("--member-dim", type=int, default=512)
    parser.add_argument("--backend", default="auto", choices=["auto", "faiss", "torch_bf16"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as tmp:
        write_members(Path(tmp), args.n_train, args.n_test, args.members, args.member_dim)
        peak_gib, load_s, search_s, dim = run_child(args, Path(tmp))
    inputs_gib = (args.n_train + args.n_test) * dim * 4 / 2**30
    print("| gallery × queries | dim | knn backend | load + concat s | search + rank s | inputs GiB | peak RSS GiB |")
    print("|---|---:|---|---:|---:|---:|---:|")
    print(
        f"| {args.n_train:,} × {args.n_test:,} | {dim} | {args.backend} | {load_s:.1f} | {search_s:.1f} "
        f"| {inputs_gib:.2f} | {peak_gib:.2f} |"
    )


if __name__ == "__main__":
    main()
