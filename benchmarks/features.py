"""Local-feature storage at Kaggle size: disk and RAM of float32 and compact (float16) files, and their answers.

Measured on synthetic crops (`whale_matcher.synthetic`: textures at 3× their default size, each with a warped
copy, RootSIFT with the kaggle profile's `max_keypoints` and mirrored features): keypoints per photo, bytes per
photo of both file kinds, and the evidence of every pair verified from the float32 and the compact file (the
same inliers, and how many ratio-test matches moved). Projected to the competition: 51,033 train and 27,956 test
photos, fullbody and backfin; RAM is what holding all of them loaded takes (float32 in memory whichever file kind
was read).

    python benchmarks/features.py [--photos 24] [--max-keypoints 600]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_PHOTOS = {"train": 51_033, "test": 27_956}
REGIONS = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24, help="synthetic textures (each also warped)")
    parser.add_argument("--max-keypoints", type=int, default=600, help="the kaggle profile's match setting")
    args = parser.parse_args()

    from whale_matcher import MatcherConfig, extract_features, load_features, save_features, verify_pairs
    from whale_matcher.synthetic import HEIGHT, WIDTH, similarity, texture, warp

    cfg = MatcherConfig(max_keypoints=args.max_keypoints)
    with tempfile.TemporaryDirectory() as tmp:
        names, paths = [], []
        for i in range(args.photos):
            gray = texture(i, 3 * WIDTH, 3 * HEIGHT)
            for name, image in ((f"t{i}", gray), (f"w{i}", warp(gray, similarity(size=(3 * WIDTH, 3 * HEIGHT))))):
                path = Path(tmp) / f"{name}.png"
                cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
                names.append(name)
                paths.append(path)
        feats = extract_features(names, paths, cfg, progress=False)
        sizes = {}
        for compact in (False, True):
            path = Path(tmp) / f"features_{compact}.npz"
            save_features(path, feats, compact=compact)
            sizes[compact] = path.stat().st_size / len(feats)
        back = load_features(Path(tmp) / "features_True.npz")
    ram = (feats.xy.nbytes + feats.desc.nbytes + feats.mirrored.xy.nbytes + feats.mirrored.desc.nbytes) / len(feats)
    pairs = np.array([(i, j) for i in range(len(feats)) for j in range(len(feats)) if i != j])
    want = verify_pairs(feats, feats, pairs, cfg, progress=False)
    got = verify_pairs(back, back, pairs, cfg, progress=False)
    differ = np.flatnonzero(got.inliers != want.inliers)
    shift = int(np.abs(got.inliers - want.inliers).max()) if len(differ) else 0
    largest = int(want.inliers[differ].max()) if len(differ) else 0
    moved = int((got.matches != want.matches).sum())

    photos = sum(KAGGLE_PHOTOS.values()) * REGIONS
    keypoints = feats.counts().mean() + feats.mirrored.counts().mean()
    print(
        f"{len(feats)} synthetic crops ({3 * WIDTH}×{3 * HEIGHT}), RootSIFT, max_keypoints {args.max_keypoints}, "
        f"mirrored: {keypoints:.0f} keypoints a photo (both orientations)"
    )
    print(
        f"{len(pairs):,} pairs verified from both files: inliers differ in {len(differ)} pairs (by at most {shift}; "
        f"their largest float32 count {largest}), ratio-test matches moved in {moved} pairs"
    )
    print(f"Kaggle: {photos:,} crops ({', '.join(f'{n:,} {s}' for s, n in KAGGLE_PHOTOS.items())} × {REGIONS} regions)")
    print("| storage | bytes / photo | disk, all crops | RAM, all crops loaded (float32) |")
    print("|---|---:|---:|---:|")
    for compact, label in ((False, "float32 (default)"), (True, "compact: float16 descriptors")):
        print(
            f"| {label} | {sizes[compact] / 1e3:.0f} kB | {sizes[compact] * photos / 1e9:.1f} GB | "
            f"{ram * photos / 1e9:.1f} GB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
