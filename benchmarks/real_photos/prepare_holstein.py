"""Holstein cow faces (the "Holstein2025" cattle re-ID set: face crops of 82 dairy cows from a farm's fixed
side-view cameras, 16–95 each) as an own catalogue plus a held-out survey, to measure the unchanged pipeline on
real photos (docs/results.md, "Real photos").

    python benchmarks/real_photos/prepare_holstein.py --images Cattle-ID/ --out /data/holstein-run

`--images` is the set's folder (holding `datasets_v2/<ear tag>/<photo>.jpg`) or a git directory whose HEAD holds
it. The set states no licence: the photos are copied into `--out`, never into this repository.

The photos are frames of camera clips, many near-duplicates, so a sighting is one cow in one clip, read from the
file name: `<start>_<end>_…` (14-digit timestamps), `J<camera>_<yyyy.mm.dd><hh_mm_ss>_…`, or `<mdd>-<camera>-<clip>-…`
(2025); any other name puts the photo in one sighting per cow with the other such names (no date). The draw, the
split by sighting and what is written: `survey.py`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pandas as pd
from survey import add_arguments, build, is_git_dir

from whale_core import InputError

SPECIES = "holstein_cattle"
ROOT = "datasets_v2"
_CLIPS = (  # (pattern of the name, how the clip and the date are read from its match)
    (re.compile(r"^(\d{8})(\d{6})_(\d{14})_"), lambda m: (m[0][:-1], m[1])),
    (re.compile(r"^(J\d+)_(\d{4})\.(\d{2})\.(\d{2})(\d{2}_\d{2}_\d{2})_"), lambda m: (m[0][:-1], m[2] + m[3] + m[4])),
    (re.compile(r"^(\d{1,2})(\d{2})-(\d+)-(\d+)"), lambda m: (m[0], f"2025{int(m[1]):02d}{m[2]}")),
)


def clip_of(name: str) -> tuple[str, str]:
    """(clip, ISO date or "") of a photo's file name (the module docstring's rules)."""
    for pattern, read in _CLIPS:
        match = pattern.match(name)
        if match:
            clip, day = read(match)
            return clip, f"{day[:4]}-{day[4:6]}-{day[6:8]}"
    return "other", ""


def list_photos(images: Path) -> list[str]:
    """Paths `datasets_v2/<ear tag>/<photo>.jpg` in the set's folder or git HEAD."""
    if is_git_dir(images):
        listing = subprocess.run(["git", f"--git-dir={images}", "ls-tree", "-r", "--name-only", "HEAD", ROOT],
                                 check=True, capture_output=True, text=True).stdout.split("\n")  # fmt: skip
    else:
        listing = [str(p.relative_to(images)) for p in sorted((images / ROOT).glob("*/*"))]
    photos = [p for p in listing if p.lower().endswith((".jpg", ".jpeg", ".png")) and p.count("/") == 2]
    if not photos:
        raise InputError(f"{images}: no photos under {ROOT}/<ear tag>/ (is --images the set's folder?)")
    return photos


def read_table(images: Path) -> pd.DataFrame:
    """The set's photos with `source`, `individual_id`, `encounter` (cow and clip) and `date`."""
    photos = list_photos(images)
    tags = [p.split("/")[1] for p in photos]
    clips = [clip_of(p.split("/")[2]) for p in photos]
    return pd.DataFrame({
        "source": photos, "individual_id": tags,
        "encounter": [f"{t}_{c}" for t, (c, _) in zip(tags, clips)], "date": [d for _, d in clips],
    })  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True, help="the set's folder, or a git directory")
    add_arguments(parser)
    args = parser.parse_args(argv)
    build(args, lambda: read_table(args.images), SPECIES, ROOT)


if __name__ == "__main__":
    main()
