"""Seconds per photo of `whale-reid identify` in a pipeline repo (default: the current folder).

    python benchmarks/identify.py [REPO] [--photos N]

Times the loading of the artefacts (once per run) apart from the per-photo work (check, detect, crop,
embed with every ensemble member, kNN, review page), on the repo's own test photos repeated to N.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from whale_core import configure_offline_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", nargs="?", default=".")
    parser.add_argument("--photos", type=int, default=64, help="photos identified (test photos, repeated)")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    configure_offline_env(repo)
    from whale_reid.identify.artefacts import load_artefacts, read_params
    from whale_reid.identify.queries import identify
    from whale_reid.review.outputs import write_outputs

    raw_dir = repo / str(read_params(repo)["data"]["raw_dir"])
    sources = sorted((raw_dir / "test_images").iterdir())
    with tempfile.TemporaryDirectory() as tmp:
        photos = []
        for i in range(args.photos):
            photos.append(Path(tmp) / "photos" / f"{i:05d}{sources[i % len(sources)].suffix}")
            photos[-1].parent.mkdir(exist_ok=True)
            shutil.copy(sources[i % len(sources)], photos[-1])
        start = time.perf_counter()
        artefacts = load_artefacts(repo)
        loaded = time.perf_counter()
        result = identify(artefacts, photos, Path(tmp) / "out")
        identified = time.perf_counter()
        write_outputs(result, artefacts, repo, Path(tmp) / "out")
        written = time.perf_counter()
    print("| photos | load artefacts s | identify s/photo | outputs + review page s/photo | total s/photo |")
    print("|---:|---:|---:|---:|---:|")
    n = len(photos)
    print(
        f"| {n} | {loaded - start:.2f} | {(identified - loaded) / n:.3f} | {(written - identified) / n:.3f} "
        f"| {(written - start) / n:.3f} |"
    )


if __name__ == "__main__":
    main()
