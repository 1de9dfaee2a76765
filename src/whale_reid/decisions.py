"""The decisions file the review pages export (`photo,decision,individual_id`), read strictly for enroll."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import InputError, read_table
from whale_retrieval import NEW_INDIVIDUAL

DECISIONS = ("match", "new")


def read_decisions(path: Path) -> pd.DataFrame:
    """The decisions CSV (photo, decision = match|new, individual_id), checked row by row.

    Raises:
        InputError: unreadable file, missing column, or a bad row (named by its line number in the file).
    """
    if not path.is_file():
        raise InputError(f"{path}: decisions file not found")
    table = read_table(path)
    for column in ("photo", "decision", "individual_id"):
        if column not in table.columns:
            raise InputError(f"{path}: missing column '{column}' (expected photo, decision, individual_id)")
    table = table[["photo", "decision", "individual_id"]].apply(lambda c: c.str.strip())
    table["line"] = np.arange(len(table)) + 2  # header is line 1
    for row, record in zip(table["line"], table.itertuples(index=False)):
        where = f"{path}: line {row} (photo {record.photo!r})"
        if not record.photo:
            raise InputError(f"{path}: line {row}: empty photo")
        if record.decision not in DECISIONS:
            raise InputError(f"{where}: decision must be 'match' or 'new', got {record.decision!r}")
        if not record.individual_id or any(ch.isspace() for ch in record.individual_id):
            raise InputError(f"{where}: individual_id must be a non-empty id without spaces")
        if record.individual_id == NEW_INDIVIDUAL:
            raise InputError(f"{where}: '{NEW_INDIVIDUAL}' is not an id; use decision=new with a name")
    decided = table.drop_duplicates(["photo", "decision", "individual_id"])
    conflicting = decided["photo"].duplicated()
    if conflicting.any():
        first = decided[conflicting].iloc[0]
        raise InputError(f"{path}: line {first['line']}: photo {first['photo']!r} already has another decision")
    return decided.reset_index(drop=True)
