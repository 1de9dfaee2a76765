"""A public set of identified animal photos laid out as an own catalogue plus a held-out survey, split by sighting.

The `prepare_<set>.py` scripts beside this one read their set's table (`source` path inside the set,
`individual_id`, `encounter`, ISO `date` or empty) and call `build`. A sighting is an `encounter`. Per individual at
most `--per-individual` photos are drawn, spread over its sightings. `--new-share` of the individuals are held out
whole (a few of their sightings become test photos answered `new_individual`); for the others whole sightings go
to the test set until about `--test-share` of their photos are there, at least one sighting staying in train.

Writes, into `--out` (which must not exist; built aside and renamed whole):
    catalogue/catalogue.csv   photo,individual_id,species,encounter,date (data.layout csv) + catalogue/<ID>/<photo>
    survey/q0001.jpg ...      the test photos under names that do not tell the individual
    survey_metadata.csv       photo,encounter,date for `whale-reid identify --metadata` (sightings s0001, ...)
    survey_truth.csv          photo,individual_id (new_individual for held-out animals),source,encounter,date
    summary.json              the counts
The photos are copied into `--out`, never into this repository.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import NEW_INDIVIDUAL, InputError, atomic_write_csv


def is_git_dir(path: Path) -> bool:
    """A git directory (bare, or the `.git` of a clone): its HEAD is read, never its work tree."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every set shares: where to write, how many photos, the split's shares and seed."""
    parser.add_argument("--out", type=Path, required=True, help="a new folder (refused if it exists)")
    parser.add_argument("--per-individual", type=int, default=18, help="photos drawn per individual (default 18)")
    parser.add_argument("--test-share", type=float, default=0.25, help="test share of known animals' photos")
    parser.add_argument("--new-share", type=float, default=0.15, help="share of individuals held out of train")
    parser.add_argument("--seed", type=int, default=0)


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


def extract(images: Path, wanted: dict[str, Path], root: str) -> None:
    """Copies each `wanted` source path (inside the dataset, under `root`) to its destination, from a folder or
    a git directory's HEAD."""
    if not is_git_dir(images):
        for source, dest in wanted.items():
            if not (images / source).is_file():
                raise InputError(f"{images / source}: photo not found (is --images the folder above {root}/?)")
            shutil.copyfile(images / source, dest)
        return
    archive = subprocess.run(["git", f"--git-dir={images}", "archive", "--format=tar", "HEAD", root],
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


def write_run(sample: pd.DataFrame, images: Path, out: Path, species: str, root: str) -> dict:
    """Lays the catalogue and the survey out in `out` (a fresh folder) and returns the summary counts."""
    train, test = sample[sample["role"] == "train"], sample[sample["role"] == "test"].reset_index(drop=True)
    catalogue = pd.DataFrame({
        "photo": train["individual_id"] + "/" + train["source"].str.rsplit("/", n=1).str[1],
        "individual_id": train["individual_id"], "species": species,
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
    extract(images, wanted, root)
    atomic_write_csv(out / "catalogue" / "catalogue.csv", catalogue)
    sightings = {e: f"s{i + 1:04d}" for i, e in enumerate(dict.fromkeys(truth["encounter"]))}  # ids tell no animal
    metadata = truth[["photo", "encounter", "date"]].assign(encounter=truth["encounter"].map(sightings))
    atomic_write_csv(out / "survey_metadata.csv", metadata)
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


def build(args: argparse.Namespace, read_table: Callable[[], pd.DataFrame], species: str, root: str) -> None:
    """Draw, split and write the run `args` asks for from the set's table; prints the summary.

    Raises:
        SystemExit: `--out` exists, or the set's table or photos are not what was expected (the message names them).
    """
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists; give a new folder (nothing was written)")
    partial = args.out.with_name(args.out.name + ".partial")
    try:
        rng = np.random.default_rng(args.seed)
        sample = draw(read_table(), args.per_individual, rng)
        sample["role"] = split(sample, args.test_share, args.new_share, rng)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        summary = write_run(sample, args.images, partial, species, root)
    except InputError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise SystemExit(f"error: {error}") from None
    summary |= {"seed": args.seed, "per_individual": args.per_individual}
    (partial / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    partial.rename(args.out)
    print(json.dumps(summary, indent=2))
