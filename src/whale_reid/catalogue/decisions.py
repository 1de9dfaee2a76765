"""The decisions file the review pages export (`photo,decision,individual_id`), read strictly for enroll, and
planned against the gallery: which photos are added, skipped or re-decided."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import InputError, read_table
from whale_retrieval import NEW_INDIVIDUAL, GalleryIndex

DECISIONS = ("match", "new")
ENROLLED_COLUMNS = ["image_id", "individual_id", "species", "photo", "decision"]


#: First characters a spreadsheet reads as a formula when it opens an exported CSV (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@")


def check_id_text(name: str, where: str) -> None:
    """Refuse an individual id a terminal or a spreadsheet would act on: control or format characters (escape
    sequences, NUL, bidi overrides) anywhere, or a formula's first character.

    Raises:
        InputError: naming `where` and the offending character.
    """
    bad = next((ch for ch in name if unicodedata.category(ch) in ("Cc", "Cf", "Cs")), None)
    if bad is not None:
        raise InputError(f"{where}: individual_id {name!r} holds the control character {bad!r}")
    if name.startswith(FORMULA_STARTS):
        raise InputError(f"{where}: individual_id {name!r} starts with {name[0]!r}, which a spreadsheet runs as a "
                         "formula; choose an id that starts with a letter or digit")  # fmt: skip


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
        check_id_text(record.individual_id, where)
        if record.individual_id == NEW_INDIVIDUAL:
            raise InputError(f"{where}: '{NEW_INDIVIDUAL}' is not an id; use decision=new with a name")
    decided = table.drop_duplicates(["photo", "decision", "individual_id"])
    conflicting = decided["photo"].duplicated()
    if conflicting.any():
        first = decided[conflicting].iloc[0]
        raise InputError(f"{path}: line {first['line']}: photo {first['photo']!r} already has another decision")
    return decided.reset_index(drop=True)


def _check_id(record, where: str, known_ids: set[str], by_case: dict[str, str]) -> None:
    """A decision's individual id against the gallery's: match needs a known id, new a fresh one (case aside)."""
    name, twin = record.individual_id, by_case.get(record.individual_id.casefold())
    if record.decision == "match" and name not in known_ids:
        hint = f"; did you mean {twin!r}?" if twin else " (use decision=new)"
        raise InputError(f"{where}: individual {name!r} is not in the gallery{hint}")
    if record.decision == "new" and name in known_ids:
        raise InputError(f"{where}: individual {name!r} is already in the gallery (decision=match)")
    if record.decision == "new" and twin is not None and twin != name:
        raise InputError(f"{where}: new individual {name!r} differs only in case from {twin!r} (match it, or choose "
                         "another id)")  # fmt: skip


def plan_rows(
    decisions: pd.DataFrame, queries: pd.DataFrame, gallery: GalleryIndex, source: str, redecide: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The decisions joined to their query rows, each checked: (photos to add, photos to re-decide).

    A photo already in the gallery under the decided id is skipped; under another id it is a conflict,
    reported unless `redecide`. A photo whose bytes were already planned (the same file in two folders)
    is added once.

    Raises:
        InputError: a photo not in the identify run, a match to an unknown id, a new id that exists (also when
            it differs only in case), or a conflicting re-decision without `redecide`.
    """
    by_photo = queries.drop_duplicates("photo").set_index("photo")
    label_of = dict(zip(gallery.image_ids.tolist(), gallery.labels.tolist()))
    known_ids = set(label_of.values())
    by_case = {name.casefold(): name for name in sorted(known_ids)}
    rows, changed, planned = [], [], set()
    for record in decisions.itertuples(index=False):
        where = f"{source}: line {record.line} (photo {record.photo!r})"
        if record.photo not in by_photo.index:
            raise InputError(f"{where}: not among the identify run's photos")
        query = by_photo.loc[record.photo]
        row = {**query.to_dict(), "photo": record.photo, "individual_id": record.individual_id,
               "decision": record.decision}  # fmt: skip
        current = label_of.get(query["image_id"])
        if current == record.individual_id or query["image_id"] in planned:
            continue
        if current is not None:
            if not redecide:
                raise InputError(f"{where}: already in the gallery as {current!r}, this decision says "
                                 f"{record.individual_id!r} (re-run with --redecide to apply it)")  # fmt: skip
            if record.decision == "match" and record.individual_id not in known_ids:
                _check_id(record, where, known_ids, by_case)
            changed.append({**row, "previous": current})
            continue
        _check_id(record, where, known_ids, by_case)
        by_case.setdefault(record.individual_id.casefold(), record.individual_id)  # two new ids of one file too
        planned.add(query["image_id"])
        rows.append(row)
    return (
        pd.DataFrame(rows, columns=[*ENROLLED_COLUMNS, "crop", "emb"]),
        pd.DataFrame(changed, columns=[*ENROLLED_COLUMNS, "previous"]),
    )
