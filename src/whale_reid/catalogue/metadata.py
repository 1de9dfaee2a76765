"""Photo metadata — encounter, date, location, side — for identify's queries and for the catalogue's photos.

An identify sidecar (`--metadata FILE`) has a `photo` column and any of `encounter,date,location,side`:

    photo,encounter,date,location,side
    day1/IMG_0012.jpg,E1,2024-06-01,Skjervøy,left

`photo` names a photo as identify was given it, relative to the sidecar's folder, or by its file name when
that is unique. Dates are ISO (`YYYY-MM-DD`), sides `left`/`right`; empty cells are unknown. Extra columns are
dropped. The run keeps the rows of its photos as `metadata.csv`; `enroll` copies them, keyed by the gallery
image id, into the catalogue's `models/catalogue/metadata.csv` (where the trained gallery's photos can be
described too, same columns with `image_id` instead of `photo`).

Restrictions (`--restrict location,side`, `--date-window DAYS`) keep only the gallery photos with the query's
value: a gallery photo whose value is unknown is left out, a query whose value is unknown is not restricted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import InputError, atomic_write_csv, read_table
from whale_reid.dataset.photos import photo_text, printable

log = logging.getLogger(__name__)

COLUMNS = ("encounter", "date", "location", "side")
SIDES = ("left", "right")
RESTRICTIONS = ("location", "side")
CATALOGUE_METADATA = "metadata.csv"


def read_metadata_csv(path: Path, key: str) -> pd.DataFrame:
    """A metadata CSV keyed by `key` (`photo` or `image_id`) with COLUMNS as stripped strings, checked row by row.

    Raises:
        InputError: unreadable, no `key` column, an empty key, a bad date or side, a key twice (naming the line).
    """
    if not path.is_file():
        raise InputError(f"{path}: metadata file not found")
    table = read_table(path, encoding="utf-8-sig")
    table.columns = [str(c).strip().lower() for c in table.columns]
    if key not in table.columns:
        raise InputError(f"{path}: missing column '{key}' (columns: {key},{','.join(COLUMNS)}, all but {key} optional)")
    table = table.reindex(columns=[key, *COLUMNS], fill_value="").apply(lambda c: c.str.strip())
    for line, row in zip(range(2, len(table) + 2), table.itertuples(index=False)):
        where = f"{path}: line {line}"
        if not getattr(row, key):
            raise InputError(f"{where}: empty {key}")
        if row.date:
            try:
                dt.date.fromisoformat(row.date)
            except ValueError:
                raise InputError(f"{where}: date {row.date!r} is not YYYY-MM-DD") from None
        if row.side and row.side.lower() not in SIDES:
            raise InputError(f"{where}: side {row.side!r} must be 'left', 'right' or empty")
    table["side"] = table["side"].str.lower()
    duplicated = table[key].duplicated()
    if duplicated.any():
        line = int(np.flatnonzero(duplicated)[0]) + 2
        raise InputError(f"{path}: line {line}: {key} {table[key].iloc[line - 2]!r} is listed twice")
    return table


def read_sidecar(path: Path, photos: Sequence[Path]) -> pd.DataFrame:
    """The sidecar's rows for identify's `photos`: a table indexed by the photo (`photo_text`), COLUMNS as strings.

    Photos without a row get empty values; rows naming no given photo are ignored (with a count in the log).

    Raises:
        InputError: unreadable file, no `photo` column, a bad date or side, a photo listed twice (naming the line).
    """
    table = read_metadata_csv(path, "photo")
    by_path = {p.resolve(): photo_text(p) for p in photos}
    names: dict[str, list[str]] = {}
    for p in photos:
        names.setdefault(printable(p.name), []).append(photo_text(p))
    found, as_given = {}, {photo_text(p): photo_text(p) for p in photos}
    for row in table.itertuples(index=False):
        given = as_given.get(row.photo) or by_path.get((path.parent / row.photo).resolve())
        if given is None and len(names.get(Path(row.photo).name, [])) == 1 and "/" not in row.photo:
            given = names[row.photo][0]
        if given is not None:
            found[given] = {c: getattr(row, c) for c in COLUMNS}
    if len(found) < len(table):
        log.info("%s: %d rows name photos not in this run (ignored)", path, len(table) - len(found))
    out = pd.DataFrame([found.get(photo_text(p), dict.fromkeys(COLUMNS, "")) for p in photos], columns=list(COLUMNS))
    return out.assign(photo=[photo_text(p) for p in photos]).set_index("photo")


def read_catalogue_metadata(catalogue: Path) -> pd.DataFrame:
    """`models/catalogue/metadata.csv` indexed by image id (an empty table when there is none)."""
    path = catalogue / CATALOGUE_METADATA
    if not path.is_file():
        return pd.DataFrame(columns=list(COLUMNS), index=pd.Index([], name="image_id"))
    return read_metadata_csv(path, "image_id").set_index("image_id")


def add_catalogue_metadata(catalogue: Path, rows: pd.DataFrame) -> None:
    """Add or replace the rows (image_id + COLUMNS) in the catalogue's metadata, atomically (caller holds the lock)."""
    rows = rows[rows[list(COLUMNS)].ne("").any(axis=1)]
    if rows.empty:
        return
    current = read_catalogue_metadata(catalogue)
    merged = pd.concat([current[~current.index.isin(rows["image_id"])], rows.set_index("image_id")[list(COLUMNS)]])
    atomic_write_csv(catalogue / CATALOGUE_METADATA, merged.reset_index(names="image_id"))


def restriction_text(query: pd.Series, restrict: Sequence[str], date_window: int | None) -> str:
    """The restrictions applied to one query, as shown on the page and in matches.csv ("" when none)."""
    parts = [f"{name}={query[name]}" for name in restrict if query.get(name, "")]
    if date_window is not None and query.get("date", ""):
        parts.append(f"date={query['date']}±{date_window}d")
    return "; ".join(parts)


def candidate_mask(
    query: pd.Series, gallery: pd.DataFrame, restrict: Sequence[str], date_window: int | None
) -> np.ndarray | None:
    """The gallery rows a query may be matched to (None: no restriction applies to it).

    Args:
        query: the query's COLUMNS.
        gallery: COLUMNS per gallery row, in the gallery's order ("" unknown).
    """
    mask = np.ones(len(gallery), dtype=bool)
    applied = False
    for name in restrict:
        if query.get(name, ""):
            mask &= gallery[name].to_numpy() == query[name]
            applied = True
    if date_window is not None and query.get("date", ""):
        day = dt.date.fromisoformat(query["date"])
        dates = pd.to_datetime(gallery["date"], format="%Y-%m-%d", errors="coerce")  # "" (unknown) → NaT
        delta = (dates - pd.Timestamp(day)).dt.days.abs()
        mask &= (delta <= date_window).fillna(False).to_numpy(dtype=bool)
        applied = True
    return mask if applied else None


def gallery_metadata(catalogue: Path, image_ids: Sequence[str]) -> pd.DataFrame:
    """COLUMNS for each gallery row, in the gallery's order ("" where the catalogue has nothing)."""
    known = read_catalogue_metadata(catalogue)
    return known.reindex([str(i) for i in image_ids]).fillna("").reset_index(drop=True)


@dataclass(frozen=True)
class Survey:
    """A survey's metadata as identify uses it.

    Attributes:
        photos: the sidecar's COLUMNS per photo (`read_sidecar`), indexed by the photo as given.
        gallery: COLUMNS per gallery row (`gallery_metadata`).
        restrict: the columns a candidate must share with the query (RESTRICTIONS).
        date_window: a candidate's date must lie within this many days of the query's (None: no limit).
    """

    photos: pd.DataFrame
    gallery: pd.DataFrame
    restrict: tuple[str, ...] = ()
    date_window: int | None = None

    def _row(self, photo: Path) -> pd.Series:
        key = photo_text(photo)
        return self.photos.loc[key] if key in self.photos.index else pd.Series(dict.fromkeys(COLUMNS, ""))

    def encounters(self, photos: Sequence[Path]) -> list[str]:
        """Each photo's encounter ("" none)."""
        return [str(self._row(p)["encounter"]) for p in photos]

    def restrictions(self, photos: Sequence[Path]) -> list[tuple[str, np.ndarray | None]]:
        """Each photo's restriction: its text (shown on the page and in matches.csv) and allowed gallery rows."""
        masks: dict[str, np.ndarray | None] = {}
        out = []
        for photo in photos:
            row = self._row(photo)
            text = restriction_text(row, self.restrict, self.date_window)
            if text not in masks:
                masks[text] = candidate_mask(row, self.gallery, self.restrict, self.date_window)
            out.append((text, masks[text]))
        if self.restrict or self.date_window is not None:
            allowed = [int(m.sum()) for m in masks.values() if m is not None]
            log.info("restricted candidates (%s): %s gallery photos per restriction", ", ".join(self.restrict)
                     or "date", allowed)  # fmt: skip
        return out
