"""Benchmark: the three choices inside the bf16 search's loop, each against the plain alternative in the same run.

    python benchmarks/bf16_blocks.py                 # the Kaggle 4608-d shapes (1,932 queries × 6,528 rows)
    python benchmarks/bf16_blocks.py --rounds 5

1. the gallery block multiplied as torch lays it out on every call (`queries @ block.T`) vs packed once for
   oneDNN (`whale_retrieval.bf16_gallery`), over 8 distinct blocks as the search streams them;
2. the candidate selection over a query chunk's 8 score blocks: `torch.topk` per block vs strided group
   maxima per block, then one top-k of the best groups' members (`whale_retrieval.knn_bf16._bf16_top`);
3. the fp32 re-score of 30 candidates per query with the gather buffer at 64 MB vs a quarter of L3.
Variants are interleaved round by round and each one's fastest round is kept.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from whale_retrieval.bf16_gallery import GROUP_COLUMNS, l3_bytes


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=1932)
    parser.add_argument("--block", type=int, default=6528, help="gallery rows per block (a multiple of 32)")
    parser.add_argument("--dim", type=int, default=4608)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    m, b, d = args.queries, -(-args.block // GROUP_COLUMNS) * GROUP_COLUMNS, args.dim
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {m} queries × {b} rows × {d}-d, bf16")
    queries = torch.randn(m, d).bfloat16()
    blocks = [torch.randn(b, d).bfloat16() for _ in range(8)]
    packed = [torch.ops.mkldnn._reorder_linear_weight(block, m) for block in blocks]
    linear = torch.ops.mkldnn._linear_pointwise
    flops = 2 * m * b * d * len(blocks)
    matmuls = {
        "queries @ block.T (laid out per call)": lambda: [queries @ block.T for block in blocks],
        "packed once (_linear_pointwise)": lambda: [linear(queries, w, None, "none", [], "") for w in packed],
    }
    print_rows("Matmul over 8 distinct gallery blocks", best_ms(matmuls, args.rounds),
               ("GFLOP/s", lambda ms: flops / ms / 1e6))  # fmt: skip

    score_blocks = [queries @ block.T for block in blocks]  # one query chunk against 8 gallery blocks
    per_block = b // GROUP_COLUMNS
    kept = torch.empty((m, 8 * b), dtype=torch.bfloat16)
    maxima = torch.empty((m, 8 * per_block), dtype=torch.bfloat16)

    def by_topk() -> None:  # the previous round: top-k per block, then a top-k of the merged candidates
        found = [torch.topk(scores, 31, dim=1) for scores in score_blocks]
        torch.topk(torch.cat([v for v, _ in found], 1), 31, dim=1)

    def by_groups() -> None:  # `_bf16_top`: strided group maxima per block, then the best groups' members
        for j, scores in enumerate(score_blocks):
            torch.amax(
                scores.view(m, GROUP_COLUMNS, per_block), dim=1, out=maxima[:, j * per_block : (j + 1) * per_block]
            )
            kept[:, j * b : (j + 1) * b] = scores
        groups = torch.topk(maxima, 31, dim=1).indices
        offsets = torch.arange(GROUP_COLUMNS) * per_block
        members = ((groups // per_block) * b + groups % per_block)[:, :, None] + offsets
        torch.topk(torch.gather(kept, 1, members.reshape(m, -1)), 31, dim=1)

    selection = {"torch.topk per block, merged": by_topk, "group maxima, then the best groups' members": by_groups}
    print_rows("Selecting 31 candidates per query from 8 score blocks", best_ms(selection, 3 * args.rounds),
               ("G scores/s", lambda ms: 8 * m * b / ms / 1e6))  # fmt: skip

    rows = torch.randn(51_033, d)
    candidates = torch.randint(0, len(rows), (m, 30)).reshape(-1)
    unit = queries.float()

    def rescore(buffer_bytes: int) -> None:
        step = max(1, buffer_bytes // (4 * 30 * d))
        buffer = torch.empty((step * 30, d))
        for start in range(0, m, step):
            stop = min(m, start + step)
            part = buffer[: (stop - start) * 30]
            torch.index_select(rows, 0, candidates[start * 30 : stop * 30], out=part)
            (unit[start:stop, None, :] @ part.view(stop - start, 30, d).transpose(1, 2))[:, 0]

    rescores = {
        "64 MB gather buffer": lambda: rescore(64 << 20),
        f"L3/4 = {l3_bytes() >> 22} MB": lambda: rescore(l3_bytes() // 4),
    }
    print_rows("fp32 re-score of 30 candidates per query", best_ms(rescores, args.rounds),
               ("GB/s gathered", lambda ms: m * 30 * d * 4 / ms / 1e6))  # fmt: skip


if __name__ == "__main__":
    main()
