"""`whale-reid enroll`: add confirmed photos to the gallery without retraining, as a new gallery version.

Where the versions live, and why: `models/gallery/` is an output of the DVC `predict` stage, so DVC owns
it — `dvc repro`/`dvc checkout` would restore or rebuild it and silently drop anything written into it.
Enrolled galleries therefore live beside it, in `models/catalogue/`:

    models/catalogue/versions/v0001/   gallery.npz + gallery.json (the whole index) + enrolled.csv
                                       (+ enrolled_features_<region>.npz: the enrolled photos' keypoints,
                                       when verified; the trained photos' stay in models/gallery)
    models/catalogue/crops/<image_id>.jpg   the enrolled photos' crops (shown on review pages)
    models/catalogue/CURRENT           the version in use ("v0001"; "base" = models/gallery), replaced atomically
    models/catalogue/log.csv           every decision, appended (`whale_reid.catalogue.audit`)
    models/catalogue/metadata.csv      encounter, date, location, side by image id (`whale_reid.catalogue.metadata`)

A version is written completely under a temporary name and renamed into place; the catalogue's metadata and
the log rows follow, and only then does CURRENT switch to it (`whale_reid.catalogue.versions`), so a killed or
failed enroll leaves the previous version in use and a rerun enrolls the same photos. Each version records
the fingerprint of the `models/gallery` it extends; when the pipeline retrains (new embedding space),
identify notices the mismatch and falls back to `models/gallery` with a warning rather than mixing
incompatible embeddings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import (
    InputError,
    atomic_write_bytes,
    inside,
    read_table,
    safe_name,
)
from whale_reid.answers.verification import MatchConfig
from whale_reid.catalogue.audit import append_log, now, read_log, reviewer_name
from whale_reid.catalogue.decisions import ENROLLED_COLUMNS, plan_rows, read_decisions
from whale_reid.catalogue.metadata import (
    CATALOGUE_METADATA,
    COLUMNS,
    add_catalogue_metadata,
    read_catalogue_metadata,
    read_metadata_csv,
)
from whale_reid.catalogue.run_folder import MANIFEST, file_lock, reading_run
from whale_reid.catalogue.versions import (
    BASE_GALLERY,
    CATALOGUE,
    QUERY_EMBEDDINGS,
    current_gallery,
    enrolled_part,
    gallery_fingerprint,
    grown_features,
    shared_features,
    switch_current,
    write_version,
)
from whale_retrieval import AnswerRule, GalleryIndex

log = logging.getLogger(__name__)


@contextlib.contextmanager
def catalogue_lock(repo: Path) -> Iterator[None]:
    """The catalogue's writers take turns (enroll, revert, merge): each sees the version the previous wrote."""
    with file_lock(repo / CATALOGUE / ".lock", exclusive=True, wait=True, busy=f"{repo / CATALOGUE}: locked"):
        yield


def version_regions(gallery: GalleryIndex) -> tuple[str, ...]:
    """The regions whose local features a gallery version keeps: those verified answers use (none otherwise)."""
    if AnswerRule.from_dict(gallery.settings).calibrator is None:
        return ()
    return MatchConfig.from_dict(gallery.settings.get("match"), section="gallery.match").regions


def load_query_embeddings(identify_dir: Path, base_fingerprint: str, run_id: str) -> pd.DataFrame:
    """identify's `query_embeddings.npz` as a table: photo, image_id, species, crop, emb (one array per row).

    The folder may come from someone else: every image id must be a plain file name and every crop a file
    inside `identify_dir` (symlinks resolved), else the whole file is refused before anything is read or written.

    Raises:
        InputError: missing file or arrays, unsafe names, another run's file (not `run_id`'s), or embeddings
            made against another trained gallery.
    """
    path = identify_dir / QUERY_EMBEDDINGS
    if not path.is_file():
        raise InputError(f"{path}: not found (run `whale-reid identify --out {identify_dir}` first)")
    path = inside(identify_dir, QUERY_EMBEDDINGS)
    with np.load(path, allow_pickle=False) as data:
        missing = {"photo", "image_id", "species", "crop", "emb"} - set(data.files)
        if missing:
            raise InputError(f"{path}: missing arrays {sorted(missing)}")
        columns = {name: data[name].astype(str).ravel() for name in ("photo", "image_id", "species", "crop")}
        emb = data["emb"].astype(np.float32)
        made_for = str(data["base_fingerprint"]) if "base_fingerprint" in data.files else ""
        made_by = str(data["run_id"]) if "run_id" in data.files else ""
    if made_by != run_id:
        raise InputError(
            f"{path}: written by run {made_by or '?'}, the folder's {MANIFEST} by run {run_id} (re-run identify)"
        )
    if made_for != base_fingerprint:
        raise InputError(f"{path}: made with other models than today's {BASE_GALLERY} (re-run `whale-reid identify`)")
    if emb.ndim != 2 or any(len(values) != len(emb) for values in columns.values()):
        raise InputError(f"{path}: arrays of different lengths (emb has shape {emb.shape})")
    for image_id, crop in zip(columns["image_id"], columns["crop"]):
        safe_name(f"{image_id}.jpg", f"{path}: image id")
        inside(identify_dir, crop, f"{path}: crop")
    return pd.DataFrame({**columns, "emb": list(emb)})


@dataclasses.dataclass(frozen=True)
class EnrollResult:
    """What an enroll run did.

    Attributes:
        added: the rows added (ENROLLED_COLUMNS).
        skipped: photos whose image is already in the gallery with this decision (a repeated run skips all).
        version: the new gallery version now CURRENT, or None when nothing changed.
        redecided: photos already in the gallery given another individual (`--redecide`): ENROLLED_COLUMNS
            plus `previous`, the id they had.
    """

    added: pd.DataFrame
    skipped: list[str]
    version: str | None
    redecided: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=ENROLLED_COLUMNS))


def enroll(
    repo: Path, decisions_csv: Path, identify_dir: Path, reviewer: str | None = None, redecide: bool = False
) -> EnrollResult:
    """Add the confirmed photos of `decisions_csv` (embedded by the identify run in `identify_dir`).

    Matches join their chosen individual, new individuals get the given id; photos already in the gallery
    are skipped, so running the same file again changes nothing; a photo the gallery holds under another
    id is refused, or, with `redecide`, moved to the decided id. One transaction: the new version, the
    run's metadata of the photos (into the catalogue's) and the log rows (by `reviewer`, default the OS
    user) are all written before CURRENT moves to the version, so a failure leaves CURRENT, and a rerun's
    plan, as they were.

    Raises:
        InputError: a bad decisions row (naming the line), a missing or incompatible identify run, an
            unreadable catalogue file (before anything is written).
    """
    decisions = read_decisions(decisions_csv)
    base_fingerprint = gallery_fingerprint(repo / BASE_GALLERY)
    # The identify folder may not switch runs while it is read (and must be one complete run); concurrent
    # enrolls take turns on the catalogue, so each sees the version the previous one wrote.
    with reading_run(identify_dir) as run_id:
        queries = load_query_embeddings(identify_dir, base_fingerprint, run_id)
        sidecar = identify_dir / CATALOGUE_METADATA
        metadata = read_metadata_csv(inside(identify_dir, CATALOGUE_METADATA), "photo") if sidecar.is_file() else None
        with catalogue_lock(repo):
            read_catalogue_metadata(repo / CATALOGUE)  # a bad row there fails now, before anything is written
            read_log(repo / CATALOGUE)
            result = _enroll(repo, decisions, decisions_csv, identify_dir, queries, redecide)
            if result.version is not None:
                _record(repo, result, run_id, reviewer_name(reviewer), metadata)
                switch_current(repo / CATALOGUE, result.version)
            return result


def _record(repo: Path, result: EnrollResult, run_id: str, reviewer: str, metadata: pd.DataFrame | None) -> None:
    """The enrolled photos into the decision log and, with the run's metadata, into the catalogue's."""
    stamp = now()
    changed = [*result.added.assign(previous="").itertuples(index=False), *result.redecided.itertuples(index=False)]
    append_log(repo / CATALOGUE, [
        {"time": stamp, "reviewer": reviewer, "action": r.decision, "photo": r.photo, "image_id": r.image_id,
         "individual_id": r.individual_id, "previous": r.previous, "identify_run": run_id, "version": result.version}
        for r in changed
    ])  # fmt: skip
    if metadata is not None:
        rows = result.added[["photo", "image_id"]].merge(metadata, on="photo", how="inner")
        add_catalogue_metadata(repo / CATALOGUE, rows[["image_id", *COLUMNS]])


def _history(gallery_dir: Path, plan: pd.DataFrame, redecided: pd.DataFrame) -> pd.DataFrame:
    """The version's `enrolled.csv`: the previous one, re-decided photos under their new id, the new rows."""
    previous = gallery_dir / "enrolled.csv"
    history = read_table(previous) if previous.is_file() else pd.DataFrame(columns=ENROLLED_COLUMNS)
    history = history[~history["image_id"].isin(redecided["image_id"])]
    return pd.concat([history, redecided[ENROLLED_COLUMNS], plan[ENROLLED_COLUMNS]], ignore_index=True)


def _enroll(
    repo: Path, decisions: pd.DataFrame, decisions_csv: Path, identify_dir: Path, queries: pd.DataFrame,
    redecide: bool,
) -> EnrollResult:  # fmt: skip
    """`enroll` once the identify run is checked and the catalogue is locked: writes the version, not CURRENT."""
    gallery, gallery_dir = current_gallery(repo)
    base_fingerprint = gallery_fingerprint(repo / BASE_GALLERY)
    plan, redecided = plan_rows(decisions, queries, gallery, str(decisions_csv), redecide)
    skipped = sorted(set(decisions["photo"]) - set(plan["photo"]) - set(redecided["photo"]))
    if plan.empty and redecided.empty:
        log.info("nothing to add: all %d photos are already in %s", len(skipped), gallery_dir)
        return EnrollResult(plan[ENROLLED_COLUMNS], skipped, None)
    crops_dir, keys = repo / CATALOGUE / "crops", []
    for image_id, crop in zip(plan["image_id"], plan["crop"]):
        source = inside(identify_dir, crop, f"{identify_dir / QUERY_EMBEDDINGS}: crop")
        keys.append(source.stem)  # the photo's key in the identify run (its features are stored under it)
        target = inside(crops_dir, safe_name(f"{image_id}.jpg", "image id"), "enrolled crop")
        atomic_write_bytes(target, source.read_bytes())
    new_label = dict(zip(redecided["image_id"], redecided["individual_id"]))
    labels = [new_label.get(i, label) for i, label in zip(gallery.image_ids.tolist(), gallery.labels.tolist())]
    grown = GalleryIndex.build(gallery.embeddings, gallery.image_ids, labels, gallery.species,
                               {**gallery.settings, "base_fingerprint": base_fingerprint})  # fmt: skip
    if len(plan):
        grown = grown.add(np.stack(plan["emb"].to_list()), plan["image_id"], plan["individual_id"], plan["species"])
    regions, base_dir = version_regions(gallery), repo / BASE_GALLERY
    if len(plan):  # verified answers: the new photos' keypoints join the version's enrolled ones
        features = {r: grown_features(enrolled_part(gallery, gallery_dir, base_dir, r), identify_dir, r, keys,
                                      plan["image_id"].tolist()) for r in regions}  # fmt: skip
    else:
        features = shared_features(gallery, gallery_dir, base_dir, regions)
    version = write_version(repo / CATALOGUE, grown, _history(gallery_dir, plan, redecided), features)
    log.info("enrolled %d photos, re-decided %d (%d skipped): gallery %s has %d rows", len(plan), len(redecided),
             len(skipped), version, len(grown))  # fmt: skip
    return EnrollResult(plan[ENROLLED_COLUMNS], skipped, version, redecided)
