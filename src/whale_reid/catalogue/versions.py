"""A gallery version's files on disk: written whole, readable by colleagues, checked against recorded digests.

    models/catalogue/versions/v0002/   gallery.npz + gallery.json, enrolled.csv,
                                       enrolled_features_<region>.npz (the enrolled photos' keypoints only)

A version holds only what enrolling added: the trained gallery's local features stay in `models/gallery/`
(`features_<region>.npz`) and are read from there, so a version costs the enrolled photos, not a copy of the
whole gallery's keypoints. A version that changes no keypoints (a merge, a re-decision) hard-links the
previous version's files instead of writing them again.

Every features file's sha256 is recorded by its writer in the `gallery.json` beside it (`features_sha256`:
the predict stage's, of `models/gallery/features_<region>.npz`; `enrolled_features_sha256`: the version's own)
and checked when it is read, so a file swapped for another split's or another version's is named, not
silently used. Versions written before this layout (a full `features_<region>.npz` in the version) still load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import (
    InputError,
    atomic_link,
    atomic_write_csv,
    atomic_write_text,
    file_sha256,
    inside,
    safe_name,
)
from whale_matcher import Features, load_features, save_features
from whale_reid.answers.verification import FEATURES_SHA256, gallery_features_path, query_features_path, row_lookup
from whale_retrieval import GalleryIndex

log = logging.getLogger(__name__)

ENROLLED_SHA256 = "enrolled_features_sha256"  #: gallery setting: region → sha256 of a version's enrolled features
CURRENT = "CURRENT"
BASE_GALLERY = Path("models/gallery")  #: the trained gallery, written by the predict stage (DVC owns it)
CATALOGUE = Path("models/catalogue")  #: the enrolled versions, beside it
BASE_VERSION = "base"  #: CURRENT's name for the trained gallery (after `whale-reid catalogue revert base`)
QUERY_EMBEDDINGS = "query_embeddings.npz"  #: what an identify run leaves for enroll


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


def enrolled_features_path(version_dir: Path, region: str) -> Path:
    return version_dir / f"enrolled_features_{region}.npz"


def checked(path: Path, recorded: Mapping[str, str] | None, region: str, record: Path) -> Path:
    """`path` when its sha256 is the one `record` holds for `region` (or none was recorded, as in older files).

    Raises:
        InputError: the file differs from what its writer recorded: naming it, the record and the fix.
    """
    digest = (recorded or {}).get(region)
    if digest is not None and path.is_file() and file_sha256(path) != digest:
        raise InputError(
            f"{path}: not the file recorded in {record} (its sha256 differs): restore it, or re-run the stage "
            "or the enroll that wrote it"
        )
    return path


def load_version_features(
    gallery: GalleryIndex, gallery_dir: Path, base_dir: Path, regions: Sequence[str]
) -> dict[str, Features]:
    """Every gallery photo's local features per region: the trained gallery's plus the version's enrolled ones.

    Raises:
        InputError: a missing, unreadable or swapped file (its sha256 is not the recorded one).
    """
    record, out = gallery_dir / "gallery.json", {}
    for region in regions:
        own = gallery_features_path(gallery_dir, region)
        if gallery_dir != base_dir and own.is_file():  # a version written before versions shared the base's
            out[region] = load_features(own)
            continue
        base = gallery_features_path(base_dir, region)
        parts = [load_features(checked(base, gallery.settings.get(FEATURES_SHA256), region, record))]
        enrolled = enrolled_features_path(gallery_dir, region)
        if enrolled.is_file():
            parts.append(load_features(checked(enrolled, gallery.settings.get(ENROLLED_SHA256), region, record)))
        out[region] = Features.concat(parts)
    return out


def enrolled_part(gallery: GalleryIndex, gallery_dir: Path, base_dir: Path, region: str) -> Features | None:
    """The features of the photos enrolled into a version so far (None for the trained gallery)."""
    if gallery_dir == base_dir:
        return None
    full = load_version_features(gallery, gallery_dir, base_dir, [region])[region]
    base = load_features(gallery_features_path(base_dir, region))
    return full.take(np.isin(full.image, base.image, invert=True))


def shared_features(gallery: GalleryIndex, gallery_dir: Path, base_dir: Path, regions: Sequence[str]) -> dict:
    """For a version that changes no keypoints: the previous version's enrolled files to link (or, from a
    version of the older layout, its enrolled photos' features to save); nothing for the trained gallery."""
    out: dict[str, Features | Path] = {}
    for region in regions:
        path = enrolled_features_path(gallery_dir, region)
        part = path if path.is_file() else enrolled_part(gallery, gallery_dir, base_dir, region)
        if part is not None:
            out[region] = part
    return out


def grown_features(
    previous: Features | None, identify_dir: Path, region: str, keys: Sequence[str], image_ids: Sequence[str]
) -> Features:
    """The enrolled features with the newly enrolled photos' appended (from the identify run, renamed to
    their gallery image ids), so an enrolled animal is verified like any other."""
    path = query_features_path(identify_dir, region)
    query = load_features(path)
    new = query.take(row_lookup(query, keys, str(path))).renamed(image_ids)
    return new if previous is None or not len(previous) else Features.concat([previous, new])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_version(
    repo_catalogue: Path, gallery: GalleryIndex, enrolled: pd.DataFrame, features: Mapping[str, Features | Path]
) -> str:
    """Save a complete new version under a hidden name, then rename it to the next `vNNNN`; its name.

    CURRENT is not touched: the caller switches it (`switch_current`) once everything else of the decision
    (catalogue metadata, log rows) is written too.

    Args:
        features: per region, the enrolled photos' features to save, or the previous version's file to share
            (hard-linked; copied where the filesystem cannot link).
    """
    versions = repo_catalogue / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    number = 1 + max((int(p.name[1:]) for p in versions.glob("v[0-9]*") if p.name[1:].isdigit()), default=0)
    name = f"v{number:04d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=versions))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: colleagues could not read the catalogue
        digests = {}
        for region, part in features.items():
            target = enrolled_features_path(tmp, region)
            if isinstance(part, Path):
                atomic_link(part, target)
            else:
                save_features(target, part)
            digests[region] = file_sha256(target)
        gallery = GalleryIndex.build(gallery.embeddings, gallery.image_ids, gallery.labels, gallery.species,
                                     {**gallery.settings, ENROLLED_SHA256: digests})  # fmt: skip
        atomic_write_csv(tmp / "enrolled.csv", enrolled)
        gallery.save(tmp)  # gallery.json last: it records the digests of what is already there
        os.rename(tmp, inside(versions, name))  # fails if a concurrent enroll took the name: nothing is overwritten
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return name


def switch_current(repo_catalogue: Path, name: str) -> None:
    """Point CURRENT at version `name` (atomically): the last step of every catalogue decision."""
    atomic_write_text(repo_catalogue / CURRENT, name + "\n")
