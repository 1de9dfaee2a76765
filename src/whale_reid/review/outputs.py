"""What an identify run leaves in its output folder: `matches.csv`, the query embeddings and features enroll reads,
and the review pages, with the gallery photos located on this machine (crop, enrolled crop or original).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from whale_core import InputError, atomic_path, atomic_write_csv, inside, read_table
from whale_matcher import save_features
from whale_reid.answers.verification import query_features_path
from whale_reid.catalogue.versions import BASE_GALLERY, CATALOGUE, QUERY_EMBEDDINGS, gallery_fingerprint
from whale_reid.common.params import DataParams
from whale_reid.identify.artefacts import read_params
from whale_reid.identify.queries import Artefacts, IdentifyResult
from whale_reid.review.pages import DEFAULT_PAGE_SIZE, REVIEW_DIR, write_review
from whale_reid.review.views import GalleryPhotos, ImageFolder, build_views


def gallery_locator(repo: Path, raw_dir: Path, region: str):
    """Where a gallery image is shown from: its crop, an enrolled photo's crop, or its original photo."""
    original = original_locator(repo, raw_dir)

    def locate(image_id: str) -> Path | None:
        options = (
            (repo / "data" / "crops" / region / "train", str(Path(image_id).with_suffix(".jpg"))),
            (repo / CATALOGUE / "crops", f"{image_id}.jpg"),
        )
        for folder, name in options:
            try:
                path = inside(folder, name)  # the id is read from a gallery file: symlinks out are refused too
            except InputError:
                continue
            if path.is_file():
                return path
        return original(image_id)

    return locate


def original_locator(repo: Path, raw_dir: Path):
    """The full-resolution original of a gallery image id, when it is on this machine.

    A catalogue's photo is its prepared `photo` (`data/prepared/train.csv`: the path relative to `raw_dir`,
    in sub-folders); a Kaggle-layout photo is `<raw_dir>/train_images/<image id>`. Enrolled photos have none.
    """
    prepared = repo / "data" / "prepared" / "train.csv"
    photos: dict[str, str] = {}
    if prepared.is_file():
        table = read_table(prepared)
        if {"image", "photo"} <= set(table.columns):
            photos = dict(zip(table["image"], table["photo"]))

    def locate(image_id: str) -> Path | None:
        folder, name = (raw_dir, photos[image_id]) if image_id in photos else (raw_dir / "train_images", image_id)
        try:  # both names are read from files: each must stay inside its folder, symlinks included
            path = inside(folder, name)
        except InputError:
            return None
        return path if path.is_file() else None

    return locate


def write_outputs(
    result: IdentifyResult, artefacts: Artefacts, repo: Path, out: Path, run_id: str = "",
    page_size: int = DEFAULT_PAGE_SIZE,
) -> None:  # fmt: skip
    """`matches.csv`, `query_embeddings.npz` (for enroll; carries `run_id`), `query_features_<region>.npz` when
    the answers were verified (for enroll too) and the review pages (`review.html` = their index, `review/`)."""
    region = artefacts.members[0].config.extract_region
    atomic_write_csv(out / "matches.csv", result.matches)
    crops = [f"crops/{region}/query/{key}.jpg" for key in result.photos["key"]]
    with atomic_path(out / QUERY_EMBEDDINGS) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            **{c: result.photos[c].to_numpy(dtype=str) for c in ("photo", "image_id", "species")},
            crop=np.asarray(crops, dtype=str),
            emb=result.embeddings.astype(np.float32),
            base_fingerprint=np.asarray(gallery_fingerprint(repo / BASE_GALLERY)),
            run_id=np.asarray(run_id),
        )
    for region_name, features in (result.features or {}).items():  # enroll appends them to the gallery's
        save_features(query_features_path(out, region_name), features)
    raw_dir = repo / DataParams.from_dict(read_params(repo).get("data")).raw_dir
    photos = GalleryPhotos(gallery_locator(repo, raw_dir, region), ImageFolder(out / REVIEW_DIR),
                           original_locator(repo, raw_dir))  # fmt: skip
    rule = artefacts.answer_rule
    match = artefacts.match_config if rule.calibrator is not None else None
    gallery_features = (artefacts.gallery_features or {}).get(region)
    views = build_views(result, artefacts.gallery, out / "crops", region, photos, match, rule, gallery_features)
    note = f"new_individual below {rule.scale} {rule.post.threshold:.3f}"
    write_review(out, views, run_id=run_id, note=note, page_size=page_size)
