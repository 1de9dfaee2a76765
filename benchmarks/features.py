"""Local-feature storage at Kaggle size: disk per descriptor coding, the inliers each moves, and the memory of reading.

1. Answers and disk. Synthetic crops (`whale_matcher.synthetic`: textures at 3× their default size, each with a
   warped copy and a flipped copy warped otherwise, the other flank), RootSIFT with the kaggle profile's
   `max_keypoints`, the query matched in both orientations: saved as format 1 wrote them (float32 vectors and the
   flipped crop's own extraction beside them, the baseline; float16 with its old compact option), as format 2 did
   before the flip was derived (8 bits, the flipped crop described and stored), and with the flip derived from the
   crop's histograms (`Features.flipped_keypoints`, nothing stored) in every coding of
   `match.features.descriptor_bits` (8 = the SIFT histogram bytes, the default; 4–7 = codes of √h), plus fewer
   keypoints at 8 bits. Per variant: bytes a photo of its file and, over every ordered pair of crops, the verified
   inliers against the baseline's (fp32 matmul, so only storage differs). Projected to the competition: 51,033 train
   and 27,956 test photos, fullbody and backfin, one file each.
2. Memory. Galleries of `--gallery-photos` photos (the synthetic ones repeated under new ids) in format 1 and in
   the default coding; in a fresh process each, what identify and predict do per query: read the gallery and
   verify one query against a shortlist of `--shortlist` candidates. Peak RSS above the RSS after imports, and
   the MB of the file's pages mapped in: the format-1 reader as it was (every array read into memory), and
   `load_features` (arrays memory-mapped) on both formats. Two sizes show what grows with the gallery.

    python benchmarks/features.py [--photos 24] [--max-keypoints 600] [--gallery-photos 500 2000] [--shortlist 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_PHOTOS = {"train": 51_033, "test": 27_956}
REGIONS = 2
TARGET_GB = 20.0
FEWER_KEYPOINTS = (500, 450)


def synthetic_crops(folder: Path, photos: int) -> tuple[list[str], list[Path]]:
    """Each texture (3× the default size), a warped copy and a flipped one warped otherwise: t<i>, w<i>, f<i>."""
    from whale_matcher.synthetic import HEIGHT, WIDTH, similarity, texture, warp

    names, paths = [], []
    for i in range(photos):
        gray = texture(i, 3 * WIDTH, 3 * HEIGHT)
        size = (3 * WIDTH, 3 * HEIGHT)
        warped = warp(gray, similarity(size=size))
        other_flank = warp(np.ascontiguousarray(gray[:, ::-1]), similarity(-7.0, 1.05, (-5.0, 3.0), size=size))
        for name, image in ((f"t{i}", gray), (f"w{i}", warped), (f"f{i}", other_flank)):
            path = folder / f"{name}.png"
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
            names.append(name)
            paths.append(path)
    return names, paths


def described_flips(paths: list[Path], cfg, folder: Path):
    """`extract_features` of every crop flipped: the mirrored part extraction stored before SIFT's was derived."""
    from whale_matcher import extract_features

    flipped = []
    for path in paths:
        out = folder / f"flipped_{path.name}"
        cv2.imwrite(str(out), cv2.imread(str(path))[:, ::-1])
        flipped.append(out)
    return extract_features([p.stem for p in paths], flipped, cfg.replace(mirror=False), progress=False)


def save_format_1(path: Path, feats, dtype=np.float32) -> None:
    """The file format 1 wrote: the compared vectors as float32 (float16: its compact option), no coding."""
    arrays = {"format_version": np.array(1), "image": feats.image}
    for prefix, part in (("", feats), ("mirrored_", feats.mirrored)):
        vectors = part.descriptors(slice(None)).astype(dtype)
        arrays.update({f"{prefix}offsets": part.offsets, f"{prefix}xy": np.asarray(part.xy), f"{prefix}desc": vectors,
                       f"{prefix}size": part.size})  # fmt: skip
    np.savez(path, **arrays)


def read_format_1_as_before(path: Path):
    """What `load_features` did before files were memory-mapped: every array read into memory."""
    from whale_matcher import Features

    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    mirrored = Features(arrays["image"], *(arrays[f"mirrored_{n}"] for n in ("offsets", "xy", "desc", "size")))
    return Features(arrays["image"], *(arrays[n] for n in ("offsets", "xy", "desc", "size")), mirrored=mirrored)


def recoded(feats, bits: int):
    """The features as extraction with `descriptor_bits` = `bits` gives them (the same rows, recoded)."""
    from whale_matcher import Coding

    coding = Coding(feats.coding.kind, bits)

    def one(part, mirrored=None):
        return dataclasses.replace(part, desc=coding.encode(np.asarray(part.desc)), coding=coding, mirrored=mirrored)

    return one(feats, None if feats.mirrored is None else one(feats.mirrored))


def answers_and_disk(args: argparse.Namespace, tmp: Path) -> tuple[list[dict], object, dict]:
    """One row per storage variant: bytes a photo, inliers against format 1, verification time."""
    from whale_matcher import MatcherConfig, extract_features, load_features, save_features, verify_pairs

    cfg = MatcherConfig(max_keypoints=args.max_keypoints, matmul="fp32")
    names, paths = synthetic_crops(tmp, args.photos)
    feats = extract_features(names, paths, cfg, progress=False)
    described = dataclasses.replace(feats, mirrored=described_flips(paths, cfg, tmp))
    pairs = np.array([(i, j) for i in range(len(feats)) for j in range(len(feats)) if i != j])
    true = np.array([names[i][1:] == names[j][1:] for i, j in pairs])
    variants = [("format 1: float32 vectors, flip described (before)", "f32", cfg),
                ("format 1 compact: float16 vectors, flip described", "f16", cfg),
                ("8 bits, flip described (format 2 before)", "described", cfg)]  # fmt: skip
    variants += [(f"{b} bits, flip derived{' (default)' if b == 8 else ''}", b, cfg) for b in (8, 7, 6, 5, 4)]
    variants += [(f"8 bits, flip derived, max_keypoints {k}", 8, cfg.replace(max_keypoints=k)) for k in FEWER_KEYPOINTS]
    rows, baseline = [], None
    for label, coding, variant_cfg in variants:
        source = feats if variant_cfg == cfg else extract_features(names, paths, variant_cfg, progress=False)
        path = tmp / f"{len(rows)}.npz"
        if coding in ("f32", "f16"):
            save_format_1(path, described, np.float32 if coding == "f32" else np.float16)
        else:
            save_features(
                path, recoded(described if coding == "described" else source, 8 if coding == "described" else coding)
            )
        back = load_features(path)
        got = verify_pairs(back, back, pairs, variant_cfg, progress=False)
        baseline = got if baseline is None else baseline
        moved = got.inliers != baseline.inliers
        rows.append({
            "label": label, "bytes": path.stat().st_size / len(back), "differ": int(moved.sum()),
            "shift": int(np.abs(got.inliers - baseline.inliers).max()),
            "largest": int(baseline.inliers[moved].max(initial=0)), "true_mean": float(got.inliers[true].mean()),
            "false_max": int(got.inliers[~true].max(initial=0)),
            "keypoints": float(back.counts().mean() + (0 if back.mirrored is None else back.mirrored.counts().mean())),
        })  # fmt: skip
    return rows, described, {"pairs": len(pairs), "true": int(true.sum())}


def decode_overhead(feats, shortlist: int) -> list[tuple[str, float]]:
    """(coding, ms) to make the compared vectors of `shortlist` candidates' rows, and of the fp32 matmul of one
    query (both orientations) against them: best of 5, one thread."""
    from threadpoolctl import threadpool_limits

    from whale_matcher import Coding

    rows = np.resize(np.arange(feats.counts()[0]), shortlist * feats.counts()[0])
    histograms = np.asarray(feats.desc)[rows]
    query = np.ones((2 * feats.counts()[0], 129), np.float32)

    def best_ms(work) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return 1e3 * min(times)

    out = []
    with threadpool_limits(1):
        for bits in (8, 6):
            coding = Coding(feats.coding.kind, bits)
            stored = coding.encode(histograms)
            out.append((f"{bits} bits: decode", best_ms(lambda c=coding, s=stored: c.decode(s))))
        block = np.ones((len(rows), 129), np.float32)
        out.append(("fp32 matmul of the query", best_ms(lambda: query @ block.T)))
    return out


def _status_mb(*fields: str) -> list[float]:
    """Fields of /proc/self/status (VmRSS: resident now, VmHWM: the peak of this process image) in MB."""
    with open("/proc/self/status", encoding="utf-8") as status:
        values = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status if line.startswith("Vm")}
    return [values[f] for f in fields]


def _mapped_mb(path: Path) -> float:
    """MB of `path`'s pages resident in this process's mappings of it (/proc/self/smaps)."""
    total_kb, inside = 0, False
    with open("/proc/self/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line: its path comes last
                inside = fields[-1] == str(path)
            elif inside and fields[0] == "Rss:":
                total_kb += int(fields[1])
    return total_kb / 1024


def child(mode: str, path: Path, shortlist: int) -> None:
    """In a fresh process: read the gallery, verify photo 0 against `shortlist` others; print the peak RSS above
    the RSS after imports (VmHWM: `ru_maxrss` would count the parent's memory at the fork) and the MB of the
    file's pages it mapped in."""
    from whale_matcher import MatcherConfig, load_features, verify_pairs

    (imported,) = _status_mb("VmRSS")
    feats = read_format_1_as_before(path) if mode == "before" else load_features(path)
    candidates = np.random.default_rng(0).choice(np.arange(1, len(feats)), shortlist, replace=False)
    pairs = np.stack([np.zeros(shortlist, np.int64), candidates], axis=1)
    verify_pairs(feats, feats, pairs, MatcherConfig(matmul="fp32"), progress=False)
    (peak,) = _status_mb("VmHWM")
    print(json.dumps({"peak_mb": peak - imported, "mapped_mb": _mapped_mb(path.resolve())}))


def measured_child(mode: str, path: Path, shortlist: int) -> dict:
    """The child's peak RSS above its RSS after imports, and the file's MB it mapped in."""
    cmd = [sys.executable, __file__, "--child", mode, str(path), str(shortlist)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"memory child {mode} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def memory(args: argparse.Namespace, feats, tmp: Path) -> list[tuple[int, str, float, dict]]:
    """(gallery photos, reading, file MB, the child's measures) per gallery size and reading; `feats` with the
    flipped crops described (what format 1 stored)."""
    from whale_matcher import save_features

    out = []
    for photos in args.gallery_photos:
        gallery = feats.take(np.resize(np.arange(len(feats)), photos)).renamed([f"g{i}" for i in range(photos)])
        old, new = tmp / f"gallery_{photos}_format_1.npz", tmp / f"gallery_{photos}.npz"
        save_format_1(old, gallery)
        save_features(new, dataclasses.replace(gallery, mirrored=None))  # the default: the flip derived
        cases = [("format 1, every array read (before)", "before", old), ("format 1, memory-mapped", "mapped", old),
                 ("8 bits (default), memory-mapped", "mapped", new)]  # fmt: skip
        for label, mode, path in cases:
            out.append((photos, label, path.stat().st_size / 1e6, measured_child(mode, path, args.shortlist)))
        old.unlink()
        new.unlink()
    return out


def report(args, rows, counts, memory_rows, overhead) -> None:
    photos = sum(KAGGLE_PHOTOS.values()) * REGIONS
    print(
        f"{counts['pairs']:,} ordered pairs of {3 * args.photos} synthetic crops ({counts['true']} of one texture), "
        f"RootSIFT, max_keypoints {args.max_keypoints}, both orientations matched: {rows[0]['keypoints']:.0f} "
        f"keypoints stored a photo with the flip described, {rows[-3]['keypoints']:.0f} derived. "
        f"Kaggle: {photos:,} crops "
        f"({', '.join(f'{n:,} {s}' for s, n in KAGGLE_PHOTOS.items())} × {REGIONS} regions)."
    )
    print("| storage | kB / photo | Kaggle disk | pairs whose inliers differ | by at most | (largest count) "
          "| true pairs' mean inliers | unrelated pairs' most |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['label']} | {r['bytes'] / 1e3:.0f} | {r['bytes'] * photos / 1e9:.1f} GB | {r['differ']} of "
            f"{counts['pairs']:,} | {r['shift']} | {r['largest']} | {r['true_mean']:.1f} | {r['false_max']} |"
        )
    exact = next(r for r in rows if "default" in r["label"])
    need = TARGET_GB * 1e9 / photos
    verdict = "meets it" if exact["bytes"] <= need else f"is {exact['bytes'] * photos / 1e9 - TARGET_GB:.1f} GB over"
    print(f"Target ≤ {TARGET_GB:.0f} GB ({need / 1e3:.0f} kB a photo): the default {verdict}; the first storage "
          f"listed within it: {next((r['label'] for r in rows if r['bytes'] <= need), 'none')}")  # fmt: skip
    print(f"\nMemory: one query verified against {args.shortlist} photos of the gallery")
    print("| gallery photos | gallery file, read | file MB | peak RSS above imports, MB | of the file mapped in, MB |")
    print("|---:|---|---:|---:|---:|")
    for photos, label, size_mb, measured in memory_rows:
        print(f"| {photos:,} | {label} | {size_mb:.0f} | {measured['peak_mb']:.0f} | {measured['mapped_mb']:.1f} |")
    print(f"Per query and region, {args.shortlist} candidates' rows: "
          + ", ".join(f"{label} {ms:.0f} ms" for label, ms in overhead))  # fmt: skip
    train, touched = KAGGLE_PHOTOS["train"] * REGIONS, args.shortlist * REGIONS * exact["bytes"]
    print(f"Kaggle: read as before, the train features of both regions take {rows[0]['bytes'] * train / 1e9:.1f} GB "
          f"before the first query; memory-mapped, a query reads its {args.shortlist} candidates' rows per region "
          f"({touched / 1e6:.0f} MB at 8 bits).")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24, help="synthetic textures (each also warped)")
    parser.add_argument("--max-keypoints", type=int, default=600, help="the kaggle profile's match setting")
    parser.add_argument("--gallery-photos", type=int, nargs="+", default=[500, 2000], help="memory test galleries")
    parser.add_argument("--shortlist", type=int, default=100, help="candidates verified for the query (match)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        rows, feats, counts = answers_and_disk(args, Path(tmp))
        memory_rows = memory(args, feats, Path(tmp))
    report(args, rows, counts, memory_rows, decode_overhead(feats, args.shortlist))
    return 0


if __name__ == "__main__":
    sys.exit(main())
