"""The catalogue's append-only decision log, `models/catalogue/log.csv`.

One row per decision, appended under the catalogue lock and never rewritten:

    time,reviewer,action,photo,image_id,individual_id,previous,identify_run,version

`action` is `match` or `new` (a photo enrolled by `whale-reid enroll`), `merge` (a photo moved from individual
`previous` to `individual_id` by `whale-reid catalogue merge`) or `revert` (CURRENT pointed back from version
`previous` to `version`). `version` is the catalogue version CURRENT points to after the decision (`base`: the
trained `models/gallery`); `previous` of an enrolled photo is empty: it was not in the gallery. `reviewer` is
`--reviewer`, else the OS user; `time` is UTC.
"""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path

import pandas as pd

from whale_core import atomic_path, read_table

LOG = "log.csv"
LOG_COLUMNS = [
    "time", "reviewer", "action", "photo", "image_id", "individual_id", "previous", "identify_run", "version"
]  # fmt: skip


def reviewer_name(given: str | None = None) -> str:
    """`--reviewer`, else the OS user's login name."""
    if given and given.strip():
        return given.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container) and no LOGNAME/USER
        return "unknown"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def append_log(catalogue: Path, rows: list[dict]) -> None:
    """Append decision rows to `log.csv` (the old bytes kept as they are; the file replaced atomically)."""
    if not rows:
        return
    path = catalogue / LOG
    old = path.read_bytes() if path.is_file() else b""
    frame = pd.DataFrame(rows).reindex(columns=LOG_COLUMNS).fillna("")
    with atomic_path(path) as tmp:
        tmp.write_bytes(old)
        frame.to_csv(tmp, mode="a", header=not old, index=False, lineterminator="\n")


def read_log(catalogue: Path) -> pd.DataFrame:
    """The decision log (strings), empty when nothing was decided yet."""
    path = catalogue / LOG
    return read_table(path) if path.is_file() else pd.DataFrame(columns=LOG_COLUMNS)
