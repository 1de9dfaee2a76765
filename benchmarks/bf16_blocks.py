"""Benchmark: the three choices inside the bf16 search's loop, each against the plain alternative in the same run.

    python benchmarks/bf16_blocks.py                 # the Kaggle 4608-d shapes (1,932 queries × 6,528 rows)
    python benchmarks/bf16_blocks.py --rounds 5

Every variant runs the search's own code (`whale_retrieval.bf16_gallery.Bf16Gallery`, `whale_retrieval.knn_bf16`)
on random unit rows, one query chunk against 8 gallery blocks:
1. the gallery blocks multiplied as torch lays them out on every call (`Bf16Gallery(prepack=False)`) vs packed
   once for oneDNN (the default on CPUs that can), scores written into the chunk's buffer either way;
2. the candidate selection from the chunk's scores: `torch.topk` per block, merged, vs the search's strided
   group maxima and one top-k of the best groups' members (`knn_bf16._bf16_top`);
3. the fp32 re-score of 30 candidates per query with the gather buffer at 64 MB vs the default, a quarter of L3.
Variants are interleaved round by round and each one's fastest round is kept.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import machine_line

from whale_retrieval.bf16_gallery import GROUP_COLUMNS, Bf16Gallery
from whale_retrieval.knn_bf16 import _bf16_scores, _bf16_top, _query_chunk, _rescore, default_gather_bytes

N_BLOCKS = 8
FETCH = 31  # the label-aware search's first fetch: a pool of 30 and the best excluded score


def best_ms(variants: dict, rounds: int) -> dict[str, float]:
    """Fastest wall milliseconds of each callable, the variants interleaved round by round."""
    best = dict.fromkeys(variants, np.inf)
    for fn in variants.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - start) * 1e3)
    return best


def print_rows(title: str, results: dict[str, float], unit) -> None:
    base = next(iter(results.values()))
    print(f"\n{title}\n\n| variant | ms | {unit[0]} | vs first row |\n|---|---:|---:|---:|")
    for name, ms in results.items():
        print(f"| {name} | {ms:.1f} | {unit[1](ms):.3g} | {base / ms:.2f}× |")


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Random fp32 rows and their norms."""
    rows = rng.standard_normal((n, dim), dtype=np.float32)
    return rows, np.linalg.norm(rows, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=1932)
    parser.add_argument("--block", type=int, default=6528, help="gallery rows per block (a multiple of 32)")
    parser.add_argument("--dim", type=int, default=4608)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    print(machine_line())
    m, b, d = args.queries, -(-args.block // GROUP_COLUMNS) * GROUP_COLUMNS, args.dim
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {m} queries × {b} rows × {d}-d, bf16")
    rng = np.random.default_rng(0)
    gallery_emb, gallery_norms = unit_rows(rng, N_BLOCKS * b, d)
    query_emb, query_norms = unit_rows(rng, m, d)
    with torch.inference_mode():
        galleries = {packed: Bf16Gallery(torch, gallery_emb, gallery_norms, torch.device("cpu"), b, m, packed)
                     for packed in (False, True)}  # fmt: skip
        queries = _query_chunk(torch, query_emb, query_norms, galleries[True])
        flops = 2 * m * b * d * N_BLOCKS
        matmuls = {
            "laid out per call (matmul into the buffer)": lambda: _bf16_scores(torch, queries.bf16, galleries[False]),
            "packed once (_linear_pointwise + copy)": lambda: _bf16_scores(torch, queries.bf16, galleries[True]),
        }
        print_rows("Matmul over 8 distinct gallery blocks (with the group maxima)", best_ms(matmuls, args.rounds),
                   ("GFLOP/s", lambda ms: flops / ms / 1e6))  # fmt: skip

        scores, maxima = _bf16_scores(torch, queries.bf16, galleries[True])

        def by_topk() -> None:  # an earlier round: top-k per block, then a top-k of the merged candidates
            found = [torch.topk(block_scores, FETCH, dim=1) for block_scores in scores]
            torch.topk(torch.cat([v for v, _ in found], 1), FETCH, dim=1)

        def by_groups() -> None:  # the search's: group maxima (taken in `_bf16_scores`, so timed again here) + top
            per_block = scores.shape[2] // GROUP_COLUMNS
            torch.amax(scores.reshape(N_BLOCKS, m, GROUP_COLUMNS, per_block), dim=2, out=maxima_by_block)
            _bf16_top(torch, scores, maxima, FETCH)

        maxima_by_block = maxima.view(m, N_BLOCKS, -1).transpose(0, 1)
        selection = {"torch.topk per block, merged": by_topk, "group maxima, then the best groups' members": by_groups}
        print_rows("Selecting 31 candidates per query from 8 score blocks", best_ms(selection, 3 * args.rounds),
                   ("G scores/s", lambda ms: N_BLOCKS * m * b / ms / 1e6))  # fmt: skip

        candidates = rng.integers(0, len(gallery_emb), (m, FETCH - 1))
        rows = torch.arange(m)
        rescores = {
            f"{gather_mb} MB gather buffer{label}": lambda n=gather_mb << 20: _rescore(
                torch, queries, rows, galleries[True], candidates, gather_bytes=n
            )
            for gather_mb, label in ((64, ""), (default_gather_bytes() >> 20, " (L3/4 up to 8 MiB, the default)"))
        }
        print_rows("fp32 re-score of 30 candidates per query", best_ms(rescores, args.rounds),
                   ("GB/s gathered", lambda ms: m * (FETCH - 1) * d * 4 / ms / 1e6))  # fmt: skip


if __name__ == "__main__":
    main()
