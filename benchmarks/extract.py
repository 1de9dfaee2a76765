"""Benchmark: images/s of `whale_embedder.extract_embeddings` against a plain fp32 loop and the CPU's ceiling.

For the demo backbone (params.yaml `embedder.common`) and tf_efficientnet_b0 at 224 and 384 px, random
weights and synthetic JPEG crops (nothing downloaded):

- plain fp32: `model(x)` on ready tensors, contiguous memory, no autocast (the baseline);
- channels_last + bf16 (or + fp32 where the CPU only emulates bf16, `whale_core.cpu`): the same tensors with
  the package's defaults (what `extract_embeddings` does);
- + torch.compile (with `--compile`; compile time excluded);
- extract_embeddings: the whole function from JPEG files (decode + resize + normalise + embed, no TTA);
- ceiling: the measured matmul GFLOP/s of that precision ÷ the model's forward FLOPs per image (FlopCounterMode).

    python benchmarks/extract.py [--images 64] [--repeats 3] [--compile] [--threads N]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import flops_per_image, machine_line, markdown_table, matmul_gflops, median_seconds, ratio
from PIL import Image

from whale_core import atomic_path, configure_offline_env
from whale_embedder import EmbedderConfig, EmbeddingModel, extract_embeddings
from whale_embedder.runtime import autocast_dtype
from whale_reid.common.params import load_params

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks.extract")


def demo_backbone() -> tuple[str, int]:
    common = load_params(ROOT / "params.yaml")["embedder"]["common"]
    return str(common["backbone"]), int(common["image_size"])


def write_crops(folder: Path, n: int, size_px: int) -> list[Path]:
    """Synthetic JPEG crops of about the model's input size (noise + a gradient, so JPEG has work)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        ramp = np.linspace(0, 255, size_px, dtype=np.float32)[None, :, None]
        pixels = np.clip(ramp + rng.normal(0, 40, (size_px, size_px, 3)), 0, 255).astype(np.uint8)
        paths.append(folder / f"{i:04d}.jpg")
        with atomic_path(paths[-1]) as tmp:
            Image.fromarray(pixels).save(tmp, format="JPEG", quality=90)
    return paths


def compute_rate(model, batch: torch.Tensor, *, channels_last: bool, bf16: bool, repeats: int) -> float:
    """Images/s of the model's embedding on a ready batch."""
    x = batch.to(memory_format=torch.channels_last) if channels_last else batch

    def run() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model.embed(x)

    return len(batch) / median_seconds(run, repeats=repeats)


def bench_model(backbone: str, size_px: int, args: argparse.Namespace, gflops: float, bf16: bool) -> list[list]:
    cfg = EmbedderConfig(backbone=backbone, image_size=size_px, embedding_dim=512, flip_tta=False)
    cfg = cfg.replace(eval_batch_size=args.batch)
    model = EmbeddingModel(cfg, n_classes=16).eval()
    flops = flops_per_image(model, size_px)
    ceiling = gflops * 1e9 / flops
    batch = torch.randn(args.batch, 3, size_px, size_px)
    plain = compute_rate(model, batch, channels_last=False, bf16=False, repeats=args.repeats)
    model_cl = model.to(memory_format=torch.channels_last)
    precision = "bf16" if bf16 else "fp32"
    rates = {
        f"channels_last + {precision}": compute_rate(
            model_cl, batch, channels_last=True, bf16=bf16, repeats=args.repeats
        )
    }
    if args.compile:
        compiled = torch.compile(model_cl)
        model_cl.embed = lambda x: torch.nn.functional.normalize(compiled(x).float(), dim=1)
        rates["+ torch.compile"] = compute_rate(model_cl, batch, channels_last=True, bf16=bf16, repeats=args.repeats)
        del model_cl.embed
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_crops(Path(tmp), args.images, size_px)
        seconds = median_seconds(lambda: extract_embeddings(model, paths, cfg, progress=False), repeats=args.repeats)
    rates["extract_embeddings (from JPEG)"] = len(paths) / seconds
    name = f"{backbone} @ {size_px}px ({flops / 1e9:.2f} GFLOP/img)"
    rows = [[name, "plain fp32 loop (baseline)", plain, "1.00×", f"{plain / ceiling:.0%}"]]
    rows += [[name, k, v, ratio(v, plain), f"{v / ceiling:.0%}"] for k, v in rates.items()]
    rows.append([name, f"ceiling: {precision} matmul rate ÷ FLOPs", ceiling, ratio(ceiling, plain), "100%"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="JPEG crops embedded by extract_embeddings")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 384], help="tf_efficientnet_b0 sizes")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    print(machine_line())
    configure_offline_env(ROOT)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    fp32, bf16 = matmul_gflops("float32"), matmul_gflops("bfloat16")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul fp32 {fp32:.0f} GFLOP/s, "
        f"bf16 {bf16:.0f} GFLOP/s"
    )
    # the package's own choice: bf16 where the CPU multiplies it natively, else fp32 (emulated bf16 is slower)
    use_bf16 = autocast_dtype("auto", torch.device("cpu"), training=False) is torch.bfloat16
    gflops = bf16 if use_bf16 else fp32
    backbone, size_px = demo_backbone()
    rows = bench_model(backbone, size_px, args, gflops, use_bf16)
    for size in args.sizes:
        rows += bench_model("tf_efficientnet_b0", size, args, gflops, use_bf16)
    print(markdown_table(["model", "path", "images/s", "vs plain", "of ceiling"], rows))


if __name__ == "__main__":
    main()
