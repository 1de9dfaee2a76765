"""`whale-reid enroll`: add confirmed photos to the gallery without retraining, as a new gallery version.

Where the versions live, and why: `models/gallery/` is an output of the DVC `predict` stage, so DVC owns
it — `dvc repro`/`dvc checkout` would restore or rebuild it and silently drop anything written into it.
Enrolled galleries therefore live beside it, in `models/catalogue/`:

    models/catalogue/versions/v0001/   gallery.npz + gallery.json (the whole index) + enrolled.csv
                                       (+ features_<region>.npz: every photo's keypoints, when verified)
    models/catalogue/crops/<image_id>.jpg   the enrolled photos' crops (shown on review pages)
    models/catalogue/CURRENT           the version in use ("v0001"; "base" = models/gallery), replaced atomically
    models/catalogue/log.csv           every decision, appended (`whale_reid.audit`)
    models/catalogue/metadata.csv      encounter, date, location, side by image id (`whale_reid.metadata`)

A version is written completely under a temporary name and renamed into place before CURRENT switches
to it, so a killed enroll leaves the previous version in use. Each version records the fingerprint of
the `models/gallery` it extends; when the pipeline retrains (new embedding space), identify notices the
mismatch and falls back to `models/gallery` with a warning rather than mixing incompatible embeddings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import (
    InputError,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_text,
    inside,
    read_table,
    safe_name,
)
from whale_matcher import save_features
from whale_reid.audit import append_log, now, reviewer_name
from whale_reid.decisions import read_decisions
from whale_reid.metadata import CATALOGUE_METADATA, COLUMNS, add_catalogue_metadata, read_metadata_csv
from whale_reid.run_folder import MANIFEST, file_lock, reading_run
from whale_reid.verification import MatchConfig, enrolled_features, gallery_features_path, load_gallery_features
from whale_retrieval import AnswerRule, GalleryIndex

log = logging.getLogger(__name__)

BASE_GALLERY = Path("models/gallery")
CATALOGUE = Path("models/catalogue")
BASE_VERSION = "base"  #: CURRENT's name for the trained gallery (after `whale-reid catalogue revert base`)
QUERY_EMBEDDINGS = "query_embeddings.npz"
ENROLLED_COLUMNS = ["image_id", "individual_id", "species", "photo", "decision"]


def gallery_fingerprint(gallery_dir: Path) -> str:
    """sha256 of a saved gallery's arrays file: which trained gallery an enrolled version extends.

    Raises:
        InputError: the gallery was never saved there.
    """
    if not (gallery_dir / "gallery.npz").is_file():
        raise InputError(f"{gallery_dir / 'gallery.npz'}: gallery file not found (run the pipeline first)")
    return hashlib.sha256((gallery_dir / "gallery.npz").read_bytes()).hexdigest()


def current_gallery(repo: Path) -> tuple[GalleryIndex, Path]:
    """The gallery to query: the CURRENT enrolled version when it extends today's `models/gallery`, else that.

    Raises:
        InputError: `models/gallery` missing or unreadable.
    """
    base_dir = repo / BASE_GALLERY
    base = GalleryIndex.load(base_dir)
    name = current_version(repo)
    if name == BASE_VERSION:
        return base, base_dir
    pointer = repo / CATALOGUE / "CURRENT"
    version_dir = inside(repo / CATALOGUE / "versions", name, f"gallery version in {pointer}")
    enrolled = GalleryIndex.load(version_dir)
    if enrolled.settings.get("base_fingerprint") != gallery_fingerprint(base_dir):
        log.warning(
            "%s extends an older %s (the models were retrained): using %s without the enrolled photos; "
            "re-run `whale-reid enroll` with your decisions files",
            version_dir, BASE_GALLERY, BASE_GALLERY,
        )  # fmt: skip
        return base, base_dir
    return enrolled, version_dir


def current_version(repo: Path) -> str:
    """The name CURRENT holds (a plain file name), or BASE_VERSION when nothing was enrolled yet."""
    pointer = repo / CATALOGUE / "CURRENT"
    if not pointer.is_file():
        return BASE_VERSION
    return safe_name(pointer.read_text(encoding="utf-8").strip(), f"gallery version in {pointer}")


@contextlib.contextmanager
def catalogue_lock(repo: Path) -> Iterator[None]:
    """The catalogue's writers take turns (enroll, revert, merge): each sees the version the previous wrote."""
    with file_lock(repo / CATALOGUE / ".lock", exclusive=True, wait=True, busy=f"{repo / CATALOGUE}: locked"):
        yield


def version_features(repo: Path, gallery: GalleryIndex, gallery_dir: Path) -> dict | None:
    """The local features of every photo of a gallery version, when its answers are verified (else None)."""
    if AnswerRule.from_dict(gallery.settings).calibrator is None:
        return None
    regions = MatchConfig.from_dict(gallery.settings.get("match"), section="gallery.match").regions
    return load_gallery_features(gallery_dir, repo / BASE_GALLERY, regions)


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
        skipped: photos whose image is already in the gallery (a repeated run skips everything).
        version: the new gallery version now CURRENT, or None when nothing was added.
    """

    added: pd.DataFrame
    skipped: list[str]
    version: str | None


def plan_rows(decisions: pd.DataFrame, queries: pd.DataFrame, gallery: GalleryIndex, source: str) -> pd.DataFrame:
    """The decisions joined to their query rows, minus photos already in the gallery, each checked.

    Raises:
        InputError: a photo not in the identify run, a match to an unknown id, or a new id that exists.
    """
    by_photo = queries.drop_duplicates("photo").set_index("photo")
    known_ids, known_images = set(gallery.labels.tolist()), set(gallery.image_ids.tolist())
    rows = []
    for record in decisions.itertuples(index=False):
        where = f"{source}: line {record.line} (photo {record.photo!r})"
        if record.photo not in by_photo.index:
            raise InputError(f"{where}: not among the identify run's photos")
        query = by_photo.loc[record.photo]
        if query["image_id"] in known_images:
            continue
        if record.decision == "match" and record.individual_id not in known_ids:
            raise InputError(f"{where}: individual {record.individual_id!r} is not in the gallery (use decision=new)")
        if record.decision == "new" and record.individual_id in known_ids:
            raise InputError(f"{where}: individual {record.individual_id!r} is already in the gallery (decision=match)")
        rows.append({**query.to_dict(), "photo": record.photo, "individual_id": record.individual_id,
                     "decision": record.decision})  # fmt: skip
    return pd.DataFrame(rows, columns=[*ENROLLED_COLUMNS, "crop", "emb"])


def write_version(repo: Path, gallery: GalleryIndex, enrolled: pd.DataFrame, features: dict | None = None) -> str:
    """Save `gallery` (and its local features, when verified) as the next version — complete before it is
    renamed into place — then switch CURRENT."""
    versions = repo / CATALOGUE / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    number = 1 + max((int(p.name[1:]) for p in versions.glob("v[0-9]*") if p.name[1:].isdigit()), default=0)
    name = f"v{number:04d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=versions))
    try:
        gallery.save(tmp)
        atomic_write_csv(tmp / "enrolled.csv", enrolled[ENROLLED_COLUMNS])
        for region, region_features in (features or {}).items():
            save_features(gallery_features_path(tmp, region), region_features)
        os.rename(tmp, inside(versions, name))  # fails if a concurrent enroll took the name: nothing is overwritten
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(repo / CATALOGUE / "CURRENT", name + "\n")
    return name


def enroll(repo: Path, decisions_csv: Path, identify_dir: Path, reviewer: str | None = None) -> EnrollResult:
    """Add the confirmed photos of `decisions_csv` (embedded by the identify run in `identify_dir`).

    Matches join their chosen individual, new individuals get the given id; photos already in the gallery
    are skipped, so running the same file again changes nothing. Each photo added is a row of the decision
    log (by `reviewer`, default the OS user); the run's metadata of those photos goes into the catalogue's.

    Raises:
        InputError: a bad decisions row (naming the line), a missing or incompatible identify run.
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
            result = _enroll(repo, decisions, decisions_csv, identify_dir, queries)
            if result.version is not None:
                _record(repo, result, run_id, reviewer_name(reviewer), metadata)
            return result


def _record(repo: Path, result: EnrollResult, run_id: str, reviewer: str, metadata: pd.DataFrame | None) -> None:
    """The enrolled photos into the decision log and, with the run's metadata, into the catalogue's."""
    stamp = now()
    append_log(repo / CATALOGUE, [
        {"time": stamp, "reviewer": reviewer, "action": r.decision, "photo": r.photo, "image_id": r.image_id,
         "individual_id": r.individual_id, "previous": "", "identify_run": run_id, "version": result.version}
        for r in result.added.itertuples(index=False)
    ])  # fmt: skip
    if metadata is not None:
        rows = result.added[["photo", "image_id"]].merge(metadata, on="photo", how="inner")
        add_catalogue_metadata(repo / CATALOGUE, rows[["image_id", *COLUMNS]])


def _enroll(
    repo: Path, decisions: pd.DataFrame, decisions_csv: Path, identify_dir: Path, queries: pd.DataFrame
) -> EnrollResult:
    """`enroll` once the identify run is checked and the catalogue is locked."""
    gallery, gallery_dir = current_gallery(repo)
    base_fingerprint = gallery_fingerprint(repo / BASE_GALLERY)
    plan = plan_rows(decisions, queries, gallery, str(decisions_csv))
    skipped = sorted(set(decisions["photo"]) - set(plan["photo"]))
    if plan.empty:
        log.info("nothing to add: all %d photos are already in %s", len(skipped), gallery_dir)
        return EnrollResult(plan[ENROLLED_COLUMNS], skipped, None)
    crops_dir, keys = repo / CATALOGUE / "crops", []
    for image_id, crop in zip(plan["image_id"], plan["crop"]):
        source = inside(identify_dir, crop, f"{identify_dir / QUERY_EMBEDDINGS}: crop")
        keys.append(source.stem)  # the photo's key in the identify run (its features are stored under it)
        target = inside(crops_dir, safe_name(f"{image_id}.jpg", "image id"), "enrolled crop")
        atomic_write_bytes(target, source.read_bytes())
    grown = gallery.add(np.stack(plan["emb"].to_list()), plan["image_id"], plan["individual_id"], plan["species"])
    grown = dataclasses.replace(grown, settings={**gallery.settings, "base_fingerprint": base_fingerprint})
    previous = gallery_dir / "enrolled.csv"
    history = read_table(previous) if previous.is_file() else None
    enrolled = pd.concat([history, plan[ENROLLED_COLUMNS]], ignore_index=True)
    features = version_features(repo, gallery, gallery_dir)
    if features is not None:  # verified answers: the photos' keypoints too
        features = enrolled_features(features, identify_dir, keys, plan["image_id"].tolist())
    version = write_version(repo, grown, enrolled, features)
    log.info("enrolled %d photos (%d skipped): gallery %s has %d rows", len(plan), len(skipped), version, len(grown))
    return EnrollResult(plan[ENROLLED_COLUMNS], skipped, version)
