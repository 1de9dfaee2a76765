"""Training memory per backbone at a size, estimated on the CPU, and the largest micro-batch each GPU holds.

For each timm backbone (random weights, nothing downloaded): the activations autograd keeps per photo in a bf16
autocast + channels_last training forward, measured at two small sizes and scaled to `--size` by pixel count,
plus parameters, gradients, Adam state and bf16 weight copies (`whale_embedder.memory`). The largest micro-batch
leaves `--headroom` of each GPU free (CUDA context, cuDNN workspace, fragmentation, the backward's transients);
`batch_size` × `grad_accum` in the profiles keeps the effective batch. One table, in about a minute on 2 cores:

    python benchmarks/memory.py [--backbones tf_efficientnet_b6_ns ...] [--size 768] [--gpu-gb 80 24]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_BACKBONES = ("tf_efficientnet_b6_ns", "tf_efficientnetv2_l_in21k", "eca_nfnet_l2")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=list(KAGGLE_BACKBONES))
    parser.add_argument("--size", type=int, default=768, help="square input side in pixels")
    parser.add_argument("--classes", type=int, default=15_587, help="ArcFace rows (the competition's individuals)")
    parser.add_argument("--embedding-dim", type=int, default=512)
    parser.add_argument("--gpu-gb", type=float, nargs="+", default=[80.0, 24.0], help="GPU sizes, decimal GB")
    parser.add_argument("--headroom", type=float, default=0.15, help="share of the GPU left free")
    parser.add_argument("--reference-batch", type=int, default=32, help="the batch whose memory is shown too")
    args = parser.parse_args()

    from whale_core import configure_offline_env
    from whale_embedder.memory import GIB, estimate_training_memory

    configure_offline_env(ROOT)
    gpus = " | ".join(f"largest batch, {gb:g} GB" for gb in args.gpu_gb)
    print(
        f"training memory at {args.size} px, bf16 autocast + channels_last, {args.classes:,}-class ArcFace head, "
        f"Adam; {args.headroom:.0%} of each GPU left free"
    )
    print(
        f"| backbone | parameters | fixed (params, grads, Adam) | activations / photo | batch "
        f"{args.reference_batch} | {gpus} |"
    )
    print("|---|---:|---:|---:|---:|" + "---:|" * len(args.gpu_gb))
    for backbone in args.backbones:
        start = time.perf_counter()
        with warnings.catch_warnings():  # timm maps deprecated names (tf_efficientnet_b6_ns → ...ns_jft_in1k)
            warnings.simplefilter("ignore", UserWarning)
            est = estimate_training_memory(
                backbone, args.size, n_classes=args.classes, embedding_dim=args.embedding_dim
            )
        fits = " | ".join(str(est.largest_batch(gb * 1e9, args.headroom)) for gb in args.gpu_gb)
        print(
            f"| {backbone} | {est.parameters / 1e6:.1f} M | {est.fixed_bytes / GIB:.2f} GiB | "
            f"{est.activation_bytes_per_image / GIB:.2f} GiB | {est.bytes_for(args.reference_batch) / GIB:.1f} GiB | "
            f"{fits} |",
            flush=True,
        )
        print(f"  ({backbone}: estimated in {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
