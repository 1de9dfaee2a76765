"""The one way the project reads its CSV tables and JSON records: every cell a string, no NA guessing.

pandas turns `NA`, `null`, `n/a`, `None`, `nan` (and more) into NaN by default, so an individual whose id
is `NA` was NaN in one stage and a string in the next. Every reader of the Kaggle CSVs and the prepared
tables goes through `read_table` (`dtype=str`, `keep_default_na=False`); an empty cell is `""`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from whale_core.errors import InputError


def read_table(path: str | os.PathLike[str], **read_csv_kwargs: Any) -> pd.DataFrame:
    """A CSV with every cell a string exactly as written (no NA values); a missing/unreadable file is an InputError.

    Args:
        path: the CSV.
        read_csv_kwargs: further `pandas.read_csv` options (encoding, skipinitialspace, ...); the NA policy
            and the string dtype cannot be overridden.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    fixed = {"dtype": str, "keep_default_na": False, "na_filter": False, "index_col": False}
    try:
        with warnings.catch_warnings():
            # rows with more fields than the header: pandas would take the first column as the index (so
            # every line number shifts) or, with index_col=False, drop the extra fields with only a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, **{**read_csv_kwargs, **fixed})
    except pd.errors.ParserWarning:
        raise InputError(f"{path}: a row has more fields than the header (a stray comma?)") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty CSV (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None


def read_json(path: str | os.PathLike[str], hint: str = "") -> Any:
    """A JSON file's content; missing or unparsable is one InputError line (with `hint`, e.g. what writes it)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: not found" + (f" ({hint})" if hint else ""))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
