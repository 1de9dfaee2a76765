"""`whale-reid catalogue log|revert|merge|export`: the catalogue's history and hand-offs.

Every change is a logged decision (`whale_reid.catalogue.audit`). A revert only moves CURRENT back (the later versions
stay, so a revert to them is possible too), a merge writes a new version; neither rewrites history. The
export is one row per photo of the current catalogue, in a plain CSV other tools import.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import InputError, atomic_write_csv, inside, read_table, safe_name
from whale_reid.catalogue.audit import append_log, now, read_log, reviewer_name
from whale_reid.catalogue.decisions import ENROLLED_COLUMNS
from whale_reid.catalogue.enroll import catalogue_lock, version_regions
from whale_reid.catalogue.metadata import COLUMNS, read_catalogue_metadata
from whale_reid.catalogue.versions import (
    BASE_GALLERY,
    BASE_VERSION,
    CATALOGUE,
    current_gallery,
    current_version,
    shared_features,
    switch_current,
    write_version,
)

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  #: escape sequences, NUL, C1 controls: shown escaped by `log`
EXPORT_COLUMNS = [
    "photo", "image_id", "individual_id", "species", *COLUMNS, "decision_source", "reviewer", "decided_at"
]  # fmt: skip


def revert(repo: Path, version: str, reviewer: str | None = None) -> str:
    """Point CURRENT back to `version` (`base`: the trained gallery) and log it; the version it pointed to.

    Raises:
        InputError: no such version.
    """
    catalogue = repo / CATALOGUE
    name = safe_name(version.strip(), "catalogue version")
    if name != BASE_VERSION and not (inside(catalogue / "versions", name) / "gallery.npz").is_file():
        raise InputError(f"{catalogue / 'versions'}: no version {name!r} (see `whale-reid catalogue log`)")
    with catalogue_lock(repo):
        previous = current_version(repo)
        append_log(catalogue, [{"time": now(), "reviewer": reviewer_name(reviewer), "action": "revert",
                                "previous": previous, "version": name}])  # fmt: skip
        switch_current(catalogue, name)  # after its log row, like every decision
    return previous


def merge(repo: Path, keep: str, absorbed: str, reviewer: str | None = None) -> tuple[str, int]:
    """Merge individual `absorbed` into `keep` (its photos take `keep`'s id) as a new version; (version, photos).

    Raises:
        InputError: an id not in the current gallery, or the same id twice.
    """
    if keep == absorbed:
        raise InputError(f"merge: {keep!r} twice (give two different individuals)")
    with catalogue_lock(repo):
        gallery, gallery_dir = current_gallery(repo)
        for name in (keep, absorbed):
            if name not in set(gallery.labels.tolist()):
                raise InputError(f"merge: individual {name!r} is not in the catalogue ({gallery_dir})")
        moved = gallery.labels == absorbed
        labels = np.where(moved, keep, gallery.labels)
        merged = type(gallery).build(gallery.embeddings, gallery.image_ids, labels, gallery.species, gallery.settings)
        history = gallery_dir / "enrolled.csv"
        enrolled = read_table(history) if history.is_file() else pd.DataFrame(columns=ENROLLED_COLUMNS)
        enrolled.loc[enrolled["individual_id"] == absorbed, "individual_id"] = keep
        features = shared_features(gallery, gallery_dir, repo / BASE_GALLERY, version_regions(gallery))
        version = write_version(repo / CATALOGUE, merged, enrolled, features)  # keypoints unchanged: linked
        photo_of = dict(zip(enrolled["image_id"], enrolled["photo"]))
        stamp, who = now(), reviewer_name(reviewer)
        append_log(repo / CATALOGUE, [
            {"time": stamp, "reviewer": who, "action": "merge", "photo": photo_of.get(i, i), "image_id": i,
             "individual_id": keep, "previous": absorbed, "version": version}
            for i in gallery.image_ids[moved].tolist()
        ])  # fmt: skip
        switch_current(repo / CATALOGUE, version)  # last: the version and its log rows are written
    return version, int(moved.sum())


def check_export_target(repo: Path, out: Path) -> None:
    """Refuse an export path inside the catalogue or the trained gallery (the log, CURRENT, a version's file):
    the append-only log must never be replaced by an export.

    Raises:
        InputError: naming the path and the folder it would overwrite into.
    """
    real = out.resolve()
    for folder in (repo / CATALOGUE, repo / BASE_GALLERY):
        root = folder.resolve()
        if real == root or root in real.parents:
            raise InputError(f"{out}: inside {folder}, whose files the export must not replace; write it elsewhere")


def printable_log(log: pd.DataFrame) -> pd.DataFrame:
    """The log with control characters shown escaped (`\\x1b`), so no cell can drive the reader's terminal."""
    return log.apply(lambda column: column.map(lambda cell: CONTROL.sub(lambda m: repr(m.group())[1:-1], cell)))


def export(repo: Path, out: Path) -> int:
    """The current catalogue as one CSV row per photo (EXPORT_COLUMNS), for other tools; the rows written.

    `decision_source` is `trained gallery` for the pipeline's own photos, else the log's last decision about
    the photo that gave it its current id (`match`, `new` or `merge`), with its reviewer and time.
    """
    check_export_target(repo, out)
    gallery, gallery_dir = current_gallery(repo)
    history = gallery_dir / "enrolled.csv"
    enrolled = read_table(history).set_index("image_id") if history.is_file() else pd.DataFrame()
    meta = read_catalogue_metadata(repo / CATALOGUE)
    log = read_log(repo / CATALOGUE)
    decided = log[log["action"].isin(["match", "new", "merge"])].drop_duplicates(["image_id", "individual_id"],
                                                                                 keep="last")  # fmt: skip
    source = {(r.image_id, r.individual_id): r for r in decided.itertuples(index=False)}
    rows = []
    for image_id, label, species in zip(gallery.image_ids.tolist(), gallery.labels.tolist(), gallery.species.tolist()):
        row = {"photo": enrolled["photo"].get(image_id, image_id) if len(enrolled) else image_id,
               "image_id": image_id, "individual_id": label, "species": species,
               **{c: (meta[c].get(image_id, "") if len(meta) else "") for c in COLUMNS}}  # fmt: skip
        found = source.get((image_id, label))
        in_base = len(enrolled) == 0 or image_id not in enrolled.index
        row["decision_source"] = "trained gallery" if found is None and in_base else (found.action if found else "")
        row["reviewer"], row["decided_at"] = (found.reviewer, found.time) if found is not None else ("", "")
        rows.append(row)
    table = pd.DataFrame(rows, columns=EXPORT_COLUMNS).astype(str)
    atomic_write_csv(out, table.apply(lambda column: column.map(spreadsheet_safe)))
    return len(rows)


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet shows as text: one starting with `=`, `+`, `-`, `@` (a formula to Excel and
    LibreOffice) gets a leading apostrophe, OWASP's CSV-injection rule. Ids from `prepare` may start so."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@") else cell


def _cmd(args) -> int:
    repo = Path(args.repo)
    if args.action == "log":
        log = read_log(repo / CATALOGUE)
        print(printable_log(log.tail(args.last)).to_string(index=False) if len(log) else "no decisions logged yet")
    elif args.action == "revert":
        previous = revert(repo, args.version, args.reviewer)
        print(f"CURRENT: {previous} → {args.version.strip()} (logged)")
    elif args.action == "merge":
        version, n = merge(repo, args.keep, args.absorbed, args.reviewer)
        print(f"{n} photos of {args.absorbed} now {args.keep} → gallery version {version} (logged)")
    else:
        n = export(repo, Path(args.out))
        print(f"{n} photos → {args.out}")
    return 0


def add_commands(commands) -> None:
    """`whale-reid catalogue log|revert|merge|export` on the `whale-reid` parser's sub-commands."""
    cat = commands.add_parser("catalogue", help="the catalogue's decision log, revert, merge, export")
    actions = cat.add_subparsers(dest="action", required=True)
    log = actions.add_parser("log", help="show the decision log")
    log.add_argument("--last", type=int, default=1_000_000, help="only the last N decisions")
    rev = actions.add_parser("revert", help="point CURRENT back to an earlier version (logged)")
    rev.add_argument("version", help=f"a version from the log (vNNNN, or {BASE_VERSION} = the trained gallery)")
    mer = actions.add_parser("merge", help="merge individual ABSORBED into KEEP (a new version, logged)")
    mer.add_argument("keep", help="the id that stays")
    mer.add_argument("absorbed", help="the id whose photos move to KEEP")
    exp = actions.add_parser("export", help="one CSV row per catalogue photo, for other tools")
    exp.add_argument("out", help="the CSV to write")
    for sub in (log, rev, mer, exp):
        sub.add_argument("--repo", default=".", help="the pipeline's repository (default: the current folder)")
    for sub in (rev, mer):
        sub.add_argument("--reviewer", help="who decides (default: the OS user)")
    cat.set_defaults(run=_cmd)
