"""MacaqueFaces (Witham 2018: 6,280 face photos of 34 rhesus macaques, 2014–2015) as an own catalogue plus a
held-out survey, to measure the unchanged pipeline on real photos (docs/results.md, "Real photos").

    python benchmarks/real_photos/prepare_macaquefaces.py --images MacaqueFaces/ --info MacaqueFaces_ImageInfo.csv \
        --out /data/macaque-run

`--images` is a folder holding `MacaqueFaces/<Category>/<ID>/<photo>.jpg` (the dataset's zip, unpacked) or a git
directory whose HEAD holds that tree; `--info` is `MacaqueFaces_ImageInfo.csv` (FileName, Path, ID, Group,
Category, DateTaken dd-mm-yyyy) or the dataset's git directory (its `ModelSet/MacaqueFaces_ImageInfo.csv`).
The photos are copied into `--out`, never into this repository; their licence allows test use, not publication.

A sighting is one individual on one `DateTaken` (the project's own encounter rule). The draw, the split by
sighting and what is written: `survey.py`.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import pandas as pd
from survey import add_arguments, build, is_git_dir

from whale_core import InputError

SPECIES = "rhesus_macaque"
INFO_IN_GIT = "ModelSet/MacaqueFaces_ImageInfo.csv"
INFO_COLUMNS = ("FileName", "Path", "ID", "DateTaken")


def read_info(source: Path) -> pd.DataFrame:
    """The image table with `source` (path inside the dataset), `individual_id`, ISO `date` and `encounter`."""
    if is_git_dir(source):
        text = subprocess.run(["git", f"--git-dir={source}", "show", f"HEAD:{INFO_IN_GIT}"],
                              check=True, capture_output=True, text=True).stdout  # fmt: skip
        info, where = pd.read_csv(io.StringIO(text), dtype=str), f"{source}:{INFO_IN_GIT}"
    else:
        info, where = pd.read_csv(source, dtype=str), str(source)
    missing = [c for c in INFO_COLUMNS if c not in info.columns]
    if missing:
        raise InputError(f"{where}: columns {missing} missing (expected {', '.join(INFO_COLUMNS)})")
    dates = pd.to_datetime(info["DateTaken"], format="%d-%m-%Y", errors="coerce")
    if dates.isna().any():
        row = int(dates.isna().to_numpy().argmax())
        raise InputError(f"{where}: line {row + 2}: DateTaken {info['DateTaken'].iloc[row]!r} is not dd-mm-yyyy")
    table = pd.DataFrame({
        "source": "MacaqueFaces" + info["Path"].str.rstrip("/") + "/" + info["FileName"],
        "individual_id": info["ID"].str.strip(),
        "date": dates.dt.strftime("%Y-%m-%d"),
    })  # fmt: skip
    table["encounter"] = table["individual_id"] + "_" + table["date"]
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True, help="folder above MacaqueFaces/, or a git directory")
    parser.add_argument("--info", type=Path, required=True, help="MacaqueFaces_ImageInfo.csv or the dataset's git dir")
    add_arguments(parser)
    args = parser.parse_args(argv)
    build(args, lambda: read_info(args.info), SPECIES, "MacaqueFaces")


if __name__ == "__main__":
    main()
