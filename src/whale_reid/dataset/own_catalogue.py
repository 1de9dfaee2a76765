"""A researcher's own catalogue: photos already sorted by individual, as folders or as a CSV, with no boxes.

Two layouts of `data.raw_dir` (docs/real-data.md, "Your own catalogue"):

- **folders**: `<raw_dir>/<individual_id>/<photo>` — every photo exactly one folder deep; the species is not
  known (`UNKNOWN_SPECIES`). Or `<raw_dir>/<species>/<individual_id>/<photo>` — every photo exactly two folders
  deep. Photos at mixed depths, or an individual's folder under two species folders (a sign that the second
  level is something else, e.g. a folder per date), are refused: give such a catalogue as a CSV.
  Files whose suffix is not a photo's, and names starting with `.`, are skipped.
- **csv**: `photo,individual_id[,species,encounter,date,side,location]`, photo paths relative to the CSV's
  folder (inside `raw_dir`); other columns are ignored.

Both give the same table: `image` = `photo` = the photo's path relative to `raw_dir` (with `/`), species,
individual_id, and the optional columns where given — sorted by image, so the same photos give the same table
whichever layout lists them. Every bad entry is an `InputError` naming the file and line (or the photo).
"""

from __future__ import annotations

import logging
import posixpath
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import NEW_INDIVIDUAL, InputError, read_table, verify_image

log = logging.getLogger(__name__)

#: The species of photos whose catalogue does not say (one species for the whole catalogue).
UNKNOWN_SPECIES = "unknown"
REQUIRED_COLUMNS = ("photo", "individual_id")
OPTIONAL_COLUMNS = ("species", "encounter", "date", "side", "location")
#: Sides a photo may show (empty = not recorded).
SIDES = ("left", "right", "dorsal", "ventral")
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})


def normalise_species(name: str) -> str:
    """`Humpback Whale` → `humpback_whale`; empty → `UNKNOWN_SPECIES`."""
    name = "_".join(name.strip().lower().split())
    return name or UNKNOWN_SPECIES


def _refuse_control_characters(frame: pd.DataFrame, where: list[str]) -> None:
    for column in frame.columns:
        bad = frame[column].map(lambda text: any(unicodedata.category(c) in ("Cc", "Cf") for c in text))
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise InputError(f"{where[row]}: {column} {frame[column].iloc[row]!r} holds a control character")


def _check_rows(frame: pd.DataFrame, where: list[str]) -> None:
    """The checks both layouts share: ids, duplicates, dates, sides (`where[i]` names row i for messages)."""
    _refuse_control_characters(frame, where)
    checks = [
        (frame["individual_id"] == "", "empty individual_id"),
        (frame["individual_id"] == NEW_INDIVIDUAL, f"individual_id '{NEW_INDIVIDUAL}' is reserved for unknowns"),
        (
            frame["individual_id"].str.contains(r"\s"),
            "individual_id holds whitespace, which the answers (five space-separated ids) cannot hold",
        ),
    ]
    if "date" in frame.columns:
        parsed = pd.to_datetime(frame["date"], format="ISO8601", errors="coerce")
        checks.append(((frame["date"] != "") & parsed.isna(), "date is not an ISO date (YYYY-MM-DD[ hh:mm[:ss]])"))
    if "side" in frame.columns:
        checks.append((~frame["side"].isin(("", *SIDES)), f"side is not one of {', '.join(SIDES)} (or empty)"))
    for mask, problem in checks:
        if mask.any():
            row = int(mask.to_numpy().argmax())
            raise InputError(f"{where[row]}: {problem} ({frame.iloc[row].to_dict()})")
    stems = frame["image"].map(lambda image: posixpath.splitext(image)[0])
    for keys, what in ((frame["image"], "photo listed twice"), (stems, "photos differing only in suffix")):
        twice = keys.duplicated(keep=False)
        if twice.any():  # (crops are stored as <photo without suffix>.jpg: one would overwrite the other)
            first, second = np.flatnonzero((keys == keys[twice].iloc[0]).to_numpy())[:2]
            raise InputError(f"{where[second]}: {what} ({frame['image'].iloc[first]!r} at {where[first]})")


def _check_photos(raw_dir: Path, frame: pd.DataFrame, where: list[str], workers: int = 4) -> None:
    for row, image in enumerate(frame["image"]):
        if not (raw_dir / image).is_file():
            raise InputError(f"{where[row]}: photo {image!r} not found in {raw_dir}")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(verify_image, [raw_dir / image for image in frame["image"]]))


def _finish(raw_dir: Path, frame: pd.DataFrame, where: list[str]) -> pd.DataFrame:
    _check_rows(frame, where)
    _check_photos(raw_dir, frame, where)
    frame = frame.assign(photo=frame["image"], species=frame["species"].map(normalise_species))
    columns = ["image", "photo", "species", "individual_id", *[c for c in OPTIONAL_COLUMNS[1:] if c in frame]]
    return frame[columns].sort_values("image", kind="stable").reset_index(drop=True)


def is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES and not path.name.startswith(".")


def read_folders(raw_dir: Path) -> pd.DataFrame:
    """The catalogue of `raw_dir` given as a folder per individual (or per species, then per individual)."""
    photos = sorted(
        p.relative_to(raw_dir)
        for p in raw_dir.rglob("*")
        if p.is_file() and is_photo(p) and not any(part.startswith(".") for part in p.relative_to(raw_dir).parts)
    )
    by_depth = {len(p.parts): p for p in photos}
    if not photos:
        raise InputError(f"{raw_dir}: no photos in folders (expected <individual_id>/<photo>)")
    if 1 in by_depth:
        raise InputError(f"{raw_dir / by_depth[1]}: a photo outside any folder (put it in its individual's folder)")
    if len(by_depth) > 1 or max(by_depth) > 3:
        found = ", ".join(str(p) for p in by_depth.values())
        raise InputError(
            f"{raw_dir}: photos at different depths ({found}); expected every photo at "
            "<individual_id>/<photo> or every one at <species>/<individual_id>/<photo>"
        )
    nested = max(by_depth) == 3
    frame = pd.DataFrame(
        {
            "image": [p.as_posix() for p in photos],
            "species": [p.parts[0] if nested else "" for p in photos],
            "individual_id": [p.parts[-2] for p in photos],
        }
    )
    if nested:
        species_of = frame.groupby("individual_id")["species"].unique()
        shared = species_of[species_of.map(len) > 1]
        if len(shared):
            raise InputError(
                f"{raw_dir}: folder {shared.index[0]!r} is under several species folders "
                f"({', '.join(shared.iloc[0])}); an individual belongs to one species "
                "(for sub-folders of an individual, give a catalogue CSV)"
            )
    skipped = sum(1 for p in raw_dir.rglob("*") if p.is_file() and not is_photo(p) and p.parent != raw_dir)
    if skipped:
        log.warning("%s: %d files that are not photos were skipped", raw_dir, skipped)
    return _finish(raw_dir, frame, [str(raw_dir / image) for image in frame["image"]])


def read_catalogue_csv(raw_dir: Path, csv_path: Path) -> pd.DataFrame:
    """The catalogue listed by `csv_path` (inside `raw_dir`; photo paths relative to the CSV's folder)."""
    table = read_table(csv_path, encoding="utf-8-sig")
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{csv_path}: missing column '{missing[0]}' (found: {', '.join(map(repr, table.columns))})")
    if table.empty:
        raise InputError(f"{csv_path}: no rows (the catalogue is empty)")
    kept = [*REQUIRED_COLUMNS, *[c for c in OPTIONAL_COLUMNS if c in table.columns]]
    frame = table[kept].apply(lambda column: column.str.strip())
    where = [f"{csv_path} line {i + 2}" for i in range(len(frame))]
    folder = posixpath.normpath(csv_path.parent.relative_to(raw_dir).as_posix())
    images = []
    for row, photo in enumerate(frame["photo"]):
        image = posixpath.normpath(posixpath.join(folder, photo.replace("\\", "/")))
        if not photo or posixpath.isabs(photo) or image.startswith("../") or image in ("..", "."):
            raise InputError(f"{where[row]}: photo {photo!r} is not a path inside {raw_dir}")
        images.append(image)
    frame = frame.drop(columns="photo").assign(image=images)
    if "species" not in frame.columns:
        frame["species"] = ""
    return _finish(raw_dir, frame.reset_index(drop=True), where)
