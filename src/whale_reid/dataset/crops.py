"""The table of a split's crops as the embedder reads it: prepared rows plus one crop path per region."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from whale_core import InputError, read_table

PREPARED_DIR = Path("data/prepared")
CROPS_DIR = Path("data/crops")


def crop_table(
    split: str, regions: Iterable[str], root: Path = Path("."), *, prepared_dir: Path = PREPARED_DIR,
    crops_dir: Path = CROPS_DIR,
) -> pd.DataFrame:  # fmt: skip
    """`<root>/<prepared_dir>/<split>.csv` (individual_id renamed to label) with a `path_<region>` column each.

    The paths are `<root>/<crops_dir>/<region>/<split>/<image stem>.jpg`, where the crop stage writes them.
    Ids are read as written (`NA`, `null`, `None` are individuals' names, not missing values).
    """
    frame = read_table(root / prepared_dir / f"{split}.csv")
    if "individual_id" in frame.columns:
        frame = frame.rename(columns={"individual_id": "label"})
    for region in regions:
        folder = root / crops_dir / region / split
        frame[f"path_{region}"] = [str(folder / Path(image).with_suffix(".jpg")) for image in frame["image"]]
    return frame


def check_fold_inputs(train: pd.DataFrame, folds: Sequence[int], source: Path = PREPARED_DIR / "train.csv") -> None:
    """Checked before any fold's checkpoints are touched: each fold has photos, each photo a label, fold and crop.

    Raises:
        InputError: naming the fold, the CSV line or the missing crop.
    """
    for column in ("image", "label", "fold"):
        if column not in train.columns:
            raise InputError(f"{source}: missing column '{column}' (re-run the prepare stage)")
    for line, (label, fold) in enumerate(zip(train["label"], train["fold"]), start=2):
        if not label.strip() or not fold.strip().lstrip("-").isdigit():
            raise InputError(f"{source} line {line}: empty individual_id or fold {fold!r} not a number")
    present = set(train["fold"].astype(int))
    missing = [k for k in folds if k not in present]
    if missing:
        raise InputError(f"embedder.folds: fold {missing[0]} has no photos in {source} (its folds: {sorted(present)})")
    check_crops(train)


def check_crops(frame: pd.DataFrame) -> None:
    """Every `path_<region>` of a crop table is a file (else an InputError naming the first missing crop)."""
    for column in [c for c in frame.columns if c.startswith("path_")]:
        absent = next((p for p in frame[column] if not Path(p).is_file()), None)
        if absent:
            raise InputError(f"{absent}: crop not found (run the crop stage)")
