"""The Kaggle "Happywhale" folder layout: reading and validating it, and writing submissions.

Only the application layer (this package and `pipelines/`) knows this layout; the ML packages see
generic tables. Every problem is an `InputError` naming the file, the line and what is wrong.
"""

from __future__ import annotations

import logging
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from whale_core import NEW_INDIVIDUAL, InputError, read_table, resolve_image_path, verify_image

log = logging.getLogger(__name__)

TRAIN_COLUMNS = ("image", "species", "individual_id")

#: Known misspellings and merged names in the competition's train.csv.
SPECIES_FIXES = {
    "bottlenose_dolpin": "bottlenose_dolphin",
    "kiler_whale": "killer_whale",
    "globis": "short_finned_pilot_whale",
    "pilot_whale": "short_finned_pilot_whale",
}


def read_csv_checked(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV as strings (BOM and CRLF tolerated), requiring `required` columns with no empty cell.

    Extra columns are dropped. Identical duplicate rows are dropped with a warning (documented
    fallback); the caller decides about conflicting duplicates.

    Raises:
        InputError: missing file, empty/unparsable file, missing column, or an empty cell — naming
            the file, the line (as a text editor counts it, header = line 1) and the column.
    """
    frame = read_table(path, encoding="utf-8-sig", skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        found = ", ".join(c if c.isprintable() else repr(c) for c in frame.columns)  # the message stays one line
        raise InputError(f"{path}: missing column '{missing[0]}' (found: {found})")
    frame = frame[list(required)].apply(lambda col: col.str.strip())
    for column in required:
        empty = frame.index[frame[column] == ""]
        if len(empty):
            raise InputError(f"{path} line {empty[0] + 2}: empty value in column '{column}'")
    duplicated_rows = frame.duplicated(keep="first")
    if duplicated_rows.any():
        log.warning("%s: dropping %d exact duplicate rows", path, int(duplicated_rows.sum()))
        frame = frame[~duplicated_rows]
    return frame


def _crop_stem(image: str) -> str:
    """The name without its suffix (the crop is `<stem>.jpg`); names like `.` or `..` are refused later."""
    path = Path(image)
    return str(path.with_suffix("")) if path.name not in ("", ".", "..") else image


def check_unique_images(frame: pd.DataFrame, path: Path) -> None:
    """Refuse two rows naming the same image, or names equal but for the suffix (`a.jpg`, `a.png`)."""
    dup = frame["image"].duplicated(keep=False)
    if dup.any():
        lines = (frame.index[dup][:2] + 2).tolist()
        name = frame.loc[dup, "image"].iloc[0]
        raise InputError(f"{path} lines {lines[0]} and {lines[1]}: duplicate image name {name!r}")
    stems = frame["image"].map(_crop_stem)
    clash = stems.duplicated(keep=False)
    if clash.any():  # crops are stored as <name without suffix>.jpg: one would overwrite the other
        lines = (frame.index[clash][:2] + 2).tolist()
        first, second = frame.loc[clash, "image"].iloc[:2]
        raise InputError(f"{path} lines {lines[0]} and {lines[1]}: {first!r} and {second!r} differ only in suffix")


def check_submission_ids(frame: pd.DataFrame, path: Path) -> None:
    """Refuse ids a submission cannot hold: its `predictions` are five ids separated by spaces, so an id with
    whitespace or a control character would be read back as other ids — found here, not after all training.

    Ids such as `NA`, `null`, `None` or `nan` are fine: every reader takes them as strings.
    """
    bad = frame["individual_id"].map(lambda i: any(c.isspace() or unicodedata.category(c) == "Cc" for c in i))
    if bad.any():
        line, value = frame.index[bad][0] + 2, frame.loc[bad, "individual_id"].iloc[0]
        raise InputError(
            f"{path} line {line}: individual_id {value!r} holds whitespace or a control character, which the "
            "submission format (five space-separated ids) cannot hold"
        )


def check_images(frame: pd.DataFrame, images_dir: Path, csv_path: Path, workers: int = 4) -> None:
    """Check every listed image exists inside `images_dir` and decodes (in parallel threads)."""
    paths = []
    for index, name in zip(frame.index, frame["image"]):
        try:
            paths.append(resolve_image_path(images_dir, name))
        except InputError as err:
            raise InputError(f"{csv_path} line {index + 2}: {err}") from None
    for index, path in zip(frame.index, paths):
        if not path.is_file():
            raise InputError(f"{csv_path} line {index + 2}: image {path.name!r} is listed but not in {images_dir}")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(verify_image, paths))


def read_train(raw_dir: Path) -> pd.DataFrame:
    """Read and validate `train.csv` + `train_images/`; species names normalised.

    Returns:
        DataFrame with columns image, species, individual_id (validated, in file order).
    """
    csv_path = raw_dir / "train.csv"
    frame = read_csv_checked(csv_path, TRAIN_COLUMNS)
    if frame.empty:
        raise InputError(f"{csv_path}: no rows (the training set is empty)")
    check_unique_images(frame, csv_path)
    reserved = frame.index[frame["individual_id"] == NEW_INDIVIDUAL]
    if len(reserved):
        raise InputError(
            f"{csv_path} line {reserved[0] + 2}: individual_id '{NEW_INDIVIDUAL}' is reserved for unknowns"
        )
    check_submission_ids(frame, csv_path)
    frame["species"] = frame["species"].str.lower().replace(SPECIES_FIXES)
    check_images(frame, raw_dir / "train_images", csv_path)
    return frame.reset_index(drop=True)


def read_test(raw_dir: Path) -> pd.DataFrame:
    """The test images: from `sample_submission.csv` when present, else the files of `test_images/`.

    An empty test set is allowed (documented fallback: an empty submission is written later).
    """
    images_dir = raw_dir / "test_images"
    sample = raw_dir / "sample_submission.csv"
    if sample.is_file():
        frame = read_csv_checked(sample, ("image",))
        check_unique_images(frame, sample)
        check_images(frame, images_dir, sample)
    else:
        names = sorted(p.name for p in images_dir.iterdir() if p.is_file()) if images_dir.is_dir() else []
        frame = pd.DataFrame({"image": names}, dtype=str)
        check_images(frame, images_dir, images_dir)
    if frame.empty:
        log.warning("%s: no test images; the submission will be empty", raw_dir)
    return frame.reset_index(drop=True)
