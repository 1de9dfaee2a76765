"""The `prepare` stage's work: read `data.raw_dir` in its layout, deal the CV folds by encounter, count.

Layouts (`data.layout`): `kaggle` (`whale_reid.dataset.kaggle`: train.csv, train_images/, test_images/), and a
researcher's own catalogue (`whale_reid.dataset.own_catalogue`): `folders` or `csv`. `auto` picks `kaggle` when
`<raw_dir>/train.csv` exists, `csv` when `<raw_dir>/<data.catalogue_csv>` exists, else `folders`; a folder with
both files is refused (set `data.layout`). A catalogue has no test photos: its test table is empty, and its
queries go through `whale-reid identify`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from whale_core import InputError, inside
from whale_reid.common.params import DataParams
from whale_reid.dataset.encounters import encounter_groups
from whale_reid.dataset.folds import PrepareConfig, assign_folds
from whale_reid.dataset.kaggle import read_test, read_train
from whale_reid.dataset.own_catalogue import read_catalogue_csv, read_folders


def detect_layout(raw_dir: Path, data: DataParams) -> str:
    """`data.layout`, or with `auto` the layout `raw_dir` has (module doc).

    Raises:
        InputError: `raw_dir` is not a folder, or `auto` finds both a train.csv and the catalogue CSV.
    """
    if not raw_dir.is_dir():
        raise InputError(f"{raw_dir}: data.raw_dir is not a folder")
    if data.layout != "auto":
        return data.layout
    kaggle, catalogue = (raw_dir / "train.csv").is_file(), (raw_dir / data.catalogue_csv).is_file()
    if kaggle and catalogue:
        raise InputError(f"{raw_dir}: holds both train.csv and {data.catalogue_csv}; set data.layout: kaggle or csv")
    return "kaggle" if kaggle else "csv" if catalogue else "folders"


def read_layout(raw_dir: Path, data: DataParams) -> tuple[pd.DataFrame, pd.DataFrame, list[Path], str]:
    """The train and test tables, the train photos' paths and the layout's name."""
    layout = detect_layout(raw_dir, data)
    if layout == "kaggle":
        train = read_train(raw_dir)
        return train, read_test(raw_dir), [raw_dir / "train_images" / i for i in train["image"]], layout
    if layout == "csv":
        train = read_catalogue_csv(raw_dir, inside(raw_dir, data.catalogue_csv, "data.catalogue_csv"))
    else:
        train = read_folders(raw_dir)
    test = pd.DataFrame({"image": [], "photo": []}, dtype=str)
    return train, test, [raw_dir / photo for photo in train["photo"]], layout


def prepare_tables(raw_dir: Path, cfg: PrepareConfig, data: DataParams) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The checked train table with its CV `fold` (encounters kept whole), the test table, and the counts.

    Raises:
        InputError: anything malformed in `raw_dir`, naming the file and line.
    """
    train, test, photos, layout = read_layout(raw_dir, data)
    groups = encounter_groups(train, photos, cfg.near_duplicate_bits)
    train["fold"] = assign_folds(train["individual_id"], cfg.n_folds, cfg.seed, groups=groups)
    counts = train["individual_id"].value_counts()
    summary = {
        "layout": layout,
        "train_images": len(train),
        "test_images": len(test),
        "individuals": int(counts.size),
        "singleton_individuals": int((counts == 1).sum()),
        "encounters": int(len(set(groups))),
        "species": int(train["species"].nunique()),
        "fold_sizes": train["fold"].value_counts().sort_index().tolist(),
    }
    return train, test, summary
