"""MacaqueFaces (Witham 2018: 6,280 face photos of 34 rhesus macaques, 2014–2015) as an own catalogue plus a
held-out survey, to measure the unchanged pipeline on real photos (docs/results.md, "Real photos").

    python benchmarks/real_photos/prepare_macaquefaces.py --images MacaqueFaces/ --info MacaqueFaces_ImageInfo.csv \
        --out /data/macaque-run

`--images` is a folder holding `MacaqueFaces/<Category>/<ID>/<photo>.jpg` (the dataset's zip, unpacked) or a git
directory whose HEAD holds that tree; `--info` is `MacaqueFaces_ImageInfo.csv` (FileName, Path, ID, Group,
Category, DateTaken dd-mm-yyyy) or the dataset's git directory (its `ModelSet/MacaqueFaces_ImageInfo.csv`).
The photos are copied into `--out`, never into this repository; their licence allows test use, not publication.

A sighting is one individual on one `DateTaken` (the project's own encounter rule). Per individual at most
`--per-individual` photos are drawn, spread over its sightings. `--new-share` of the individuals are held out
whole (a few of their sightings become test photos answered `new_individual`); for the others whole sightings go
to the test set until about `--test-share` of their photos are there, at least one sighting staying in train.

Writes, into `--out` (which must not exist; built aside and renamed whole):
    catalogue/catalogue.csv   photo,individual_id,species,encounter,date (data.layout csv) + catalogue/<ID>/<photo>
    survey/q0001.jpg ...      the test photos under names that do not tell the individual
    survey_metadata.csv       photo,encounter,date for `whale-reid identify --metadata`
    survey_truth.csv          photo,individual_id (new_individual for held-out animals),source,encounter,date
    summary.json              the counts
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import NEW_INDIVIDUAL, InputError, atomic_write_csv

SPECIES = "rhesus_macaque"
INFO_IN_GIT = "ModelSet/MacaqueFaces_ImageInfo.csv"
INFO_COLUMNS = ("FileName", "Path", "ID", "DateTaken")


def is_git_dir(path: Path) -> bool:
    """A git directory (bare, or the `.git` of a clone): its HEAD is read, never its work tree."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


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


def draw(table: pd.DataFrame, per_individual: int, rng: np.random.Generator) -> pd.DataFrame:
    """At most `per_individual` photos of each individual, taken round-robin over its sightings (shuffled)."""
    chosen = []
    for _, photos in table.groupby("individual_id", sort=True):
        queues = [list(rng.permutation(g.index)) for _, g in photos.groupby("encounter", sort=True)]
        order = rng.permutation(len(queues))
        picked: list[int] = []
        while len(picked) < per_individual and any(queues):
            for q in order:
                if queues[q] and len(picked) < per_individual:
                    picked.append(queues[q].pop())
        chosen.extend(picked)
    return table.loc[sorted(chosen)].reset_index(drop=True)


def split(sample: pd.DataFrame, test_share: float, new_share: float, rng: np.random.Generator) -> pd.Series:
    """`train`, `test` or `unused` per photo, whole sightings at a time (see the module docstring)."""
    role = pd.Series("train", index=sample.index)
    individuals = sorted(sample["individual_id"].unique())
    n_new = max(1, round(new_share * len(individuals)))
    held_out = set(rng.choice(individuals, size=n_new, replace=False).tolist())
    for ident, photos in sample.groupby("individual_id", sort=True):
        sightings = list(rng.permutation(sorted(photos["encounter"].unique())))
        if ident in held_out:
            role[photos.index] = "unused"  # absent from train; its test sightings are chosen below
        else:
            sightings = sightings[:-1]  # one sighting always stays in train
        target, taken = test_share * len(photos), 0
        for sighting in sightings:
            in_sighting = photos.index[photos["encounter"] == sighting]
            if taken + len(in_sighting) > 1.2 * target:
                continue
            role[in_sighting] = "test"
            taken += len(in_sighting)
            if taken >= 0.8 * target:
                break
    return role


def extract(images: Path, wanted: dict[str, Path]) -> None:
    """Copies each `wanted` source path (inside the dataset) to its destination, from a folder or a git HEAD."""
    if not is_git_dir(images):
        for source, dest in wanted.items():
            if not (images / source).is_file():
                raise InputError(f"{images / source}: photo not found (is --images the folder above MacaqueFaces/?)")
            shutil.copyfile(images / source, dest)
        return
    archive = subprocess.run(["git", f"--git-dir={images}", "archive", "--format=tar", "HEAD", "MacaqueFaces"],
                             check=True, capture_output=True).stdout  # fmt: skip
    found = set()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            if member.name in wanted and member.isfile():
                wanted[member.name].write_bytes(tar.extractfile(member).read())
                found.add(member.name)
    missing = sorted(set(wanted) - found)
    if missing:
        raise InputError(f"{images}: {len(missing)} photos missing from HEAD, e.g. {missing[0]}")


def write_run(sample: pd.DataFrame, images: Path, out: Path) -> dict:
    """Lays the catalogue and the survey out in `out` (a fresh folder) and returns the summary counts."""
    train, test = sample[sample["role"] == "train"], sample[sample["role"] == "test"].reset_index(drop=True)
    catalogue = pd.DataFrame({
        "photo": train["individual_id"] + "/" + train["source"].str.rsplit("/", n=1).str[1],
        "individual_id": train["individual_id"], "species": SPECIES,
        "encounter": train["encounter"], "date": train["date"],
    })  # fmt: skip
    names = [f"q{i + 1:04d}.jpg" for i in range(len(test))]
    known = set(train["individual_id"])
    truth = pd.DataFrame({
        "photo": names,
        "individual_id": [i if i in known else NEW_INDIVIDUAL for i in test["individual_id"]],
        "source": test["source"], "encounter": test["encounter"], "date": test["date"],
    })  # fmt: skip
    for ident in catalogue["individual_id"].unique():
        (out / "catalogue" / ident).mkdir(parents=True)
    (out / "survey").mkdir()
    wanted = {s: out / "catalogue" / p for s, p in zip(train["source"], catalogue["photo"])}
    wanted |= {s: out / "survey" / n for s, n in zip(test["source"], names)}
    extract(images, wanted)
    atomic_write_csv(out / "catalogue" / "catalogue.csv", catalogue)
    atomic_write_csv(out / "survey_metadata.csv", truth[["photo", "encounter", "date"]])
    atomic_write_csv(out / "survey_truth.csv", truth)
    is_new = truth["individual_id"] == NEW_INDIVIDUAL
    return {
        "train_photos": len(catalogue), "train_individuals": int(catalogue["individual_id"].nunique()),
        "train_sightings": int(catalogue["encounter"].nunique()),
        "test_photos": len(truth), "test_photos_new": int(is_new.sum()),
        "test_individuals": int(test["individual_id"].nunique()),
        "test_individuals_new": int(test.loc[is_new, "individual_id"].nunique()),
        "test_sightings": int(truth["encounter"].nunique()),
        "test_share": round(len(truth) / (len(truth) + len(catalogue)), 3),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True, help="folder above MacaqueFaces/, or a git directory")
    parser.add_argument("--info", type=Path, required=True, help="MacaqueFaces_ImageInfo.csv or the dataset's git dir")
    parser.add_argument("--out", type=Path, required=True, help="a new folder (refused if it exists)")
    parser.add_argument("--per-individual", type=int, default=18, help="photos drawn per individual (default 18)")
    parser.add_argument("--test-share", type=float, default=0.25, help="test share of known animals' photos")
    parser.add_argument("--new-share", type=float, default=0.15, help="share of individuals held out of train")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        run(args)
    except InputError as error:
        raise SystemExit(f"error: {error}") from None


def run(args: argparse.Namespace) -> None:
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists; give a new folder (nothing was written)")
    rng = np.random.default_rng(args.seed)
    sample = draw(read_info(args.info), args.per_individual, rng)
    sample["role"] = split(sample, args.test_share, args.new_share, rng)
    partial = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    summary = write_run(sample, args.images, partial) | {"seed": args.seed, "per_individual": args.per_individual}
    (partial / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    partial.rename(args.out)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
