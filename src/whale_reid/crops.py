"""The table of a split's crops as the embedder reads it: prepared rows plus one crop path per region."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

PREPARED_DIR = Path("data/prepared")
CROPS_DIR = Path("data/crops")


def crop_table(split: str, regions: Iterable[str], root: Path = Path(".")) -> pd.DataFrame:
    """`<root>/data/prepared/<split>.csv` (individual_id renamed to label) with a `path_<region>` column each.

    The paths are `<root>/data/crops/<region>/<split>/<image stem>.jpg`, where the crop stage writes them.
    """
    frame = pd.read_csv(root / PREPARED_DIR / f"{split}.csv", dtype=str)
    if "individual_id" in frame.columns:
        frame = frame.rename(columns={"individual_id": "label"})
    for region in regions:
        folder = root / CROPS_DIR / region / split
        frame[f"path_{region}"] = [str(folder / Path(image).with_suffix(".jpg")) for image in frame["image"]]
    return frame
