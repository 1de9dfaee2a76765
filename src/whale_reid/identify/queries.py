"""`whale-reid identify`: new survey photos → top-5 individuals, with the pipeline's own models and gallery.

The answers are the predict stage's, by construction: the same detector and `crop` params cut the crops
(`whale_detector.detect_boxes` / `crop_regions`), every selected checkpoint embeds them with its own config
(flip-TTA included), the parts are concatenated in the selection's order (`concat_embeddings`, as
`ensemble_embeddings` does), then the one answer composition (`whale_reid.answers.compose.compose_answers`) with
the rule saved in the gallery settings; the queries' local features are extracted from their crops
(`whale_matcher.extract_features`) only when that rule is calibrated.
A photo that cannot be read gets an error row; the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from whale_core import InputError, load_rgb
from whale_detector import CropConfig, crop_regions, detect_boxes, given_boxes
from whale_reid.answers.compose import AnswerContext, Composed, Queries, compose_answers, partitions
from whale_reid.answers.head_scores import Head
from whale_reid.answers.verification import MatchConfig
from whale_reid.catalogue.metadata import Survey
from whale_reid.dataset.photos import content_id, find_photos, is_image_file, photo_key, photo_text, printable  # noqa: F401
from whale_retrieval import AnswerRule, Answers, GalleryIndex, KnnConfig, concat_embeddings, query_species

log = logging.getLogger(__name__)

MATCH_COLUMNS = [
    "photo", "rank", "individual_id", "similarity", "probability", "species", "region", "x1", "y1", "x2", "y2",
    "encounter", "filters", "error", "recommendation", "p_same", "threshold",
]  # fmt: skip
INTEGER_COLUMNS = ["rank", "x1", "y1", "x2", "y2"]  # stay integers (empty on an error row), never 12.0
QUERY_SPLIT = "query"
CHUNK_PHOTOS = 256  # photos detected, cropped and embedded together (bounds memory on large surveys)


@dataclass(frozen=True)
class Member:
    """One selected checkpoint, loaded once: its network and its own config (region, size, flip-TTA)."""

    model: str
    fold: int
    network: Any  # whale_embedder.EmbeddingModel (torch is imported only when models are loaded)
    config: Any  # whale_embedder.EmbedderConfig

    def embed(self, table: pd.DataFrame) -> np.ndarray:
        """Unit-norm embeddings of a crop table (`image`, `path_<extract_region>`), as the stage extracts them."""
        from whale_embedder import extract_embeddings

        device = next(self.network.parameters()).device  # where load_members put it
        return extract_embeddings(self.network, table, self.config, device=device, progress=False)


@dataclass(frozen=True)
class Artefacts:
    """Everything identify needs from a pipeline run, loaded once.

    Attributes:
        detector_weights: the trained detector (used when `crop_config.box_source` is `detector`).
        given_boxes: the `crop.boxes_csv` table (used when the box source is `boxes_csv`).
        members: the ensemble in the selection's order.
        gallery_dir: the gallery version in use (`models/gallery` or an enrolled version).
        gallery_features: the gallery photos' local features per region, when the answers are verified
            (photos enrolled later have none and count 0 inliers).
        heads: the members' ArcFace heads, when the rule blends them (`whale_reid.answers.head_scores`; individuals
            enrolled later have no class and rank by their neighbours alone).
    """

    crop_config: CropConfig
    members: list[Member]
    gallery: GalleryIndex
    gallery_dir: Path
    detector_weights: Path | None = None
    given_boxes: pd.DataFrame | None = None
    gallery_features: dict[str, Any] | None = None
    heads: list[Head] | None = None

    @property
    def answer_rule(self) -> AnswerRule:
        """The predict stage's answer rule, saved with the gallery (threshold, k, offsets, calibrator)."""
        return AnswerRule.from_dict(self.gallery.settings, source=f"{self.gallery_dir}/gallery.json")

    @property
    def match_config(self) -> MatchConfig:
        return MatchConfig.from_dict(self.gallery.settings.get("match"), section="gallery.match")

    @property
    def knn_config(self) -> KnnConfig:
        return KnnConfig.from_dict(self.gallery.settings.get("knn"), section="gallery.knn")

    def answer_context(self) -> AnswerContext:
        """The gallery, its saved rule and settings as `compose_answers` takes them (no region re-scoring)."""
        return AnswerContext(self.answer_rule, self.gallery, self.knn_config, self.match_config,
                             self.gallery_features, self.heads or (), allow_missing_gallery=True)  # fmt: skip


@dataclass(frozen=True)
class IdentifyResult:
    """What one identify run found.

    Attributes:
        matches: the `matches.csv` table (MATCH_COLUMNS): five rows per photo, one error row (rank 0) per
            unreadable photo, in the order the photos were given; `filters` is the candidate restriction applied.
        photos: one row per readable photo — photo, key (its crop file stem), image_id (content id),
            species (predicted), path, encounter ("" none; an encounter's photos share their answers).
        embeddings: float32 [n_photos, d] ensemble embeddings, rows in `photos` order.
        boxes: the `crop_regions` table of the readable photos (image = key).
        similarities, neighbours: the neighbours [n_photos, k] (gallery row indices) in the order the answers
            ranked them, best first, with the answer rule's scores (P(same) when verified).
        scale: what `similarities` are: "similarity" or "probability".
        features: the photos' local features per region (keyed by `key`) when the answers were verified.
    """

    matches: pd.DataFrame
    photos: pd.DataFrame
    embeddings: np.ndarray
    boxes: pd.DataFrame
    similarities: np.ndarray
    neighbours: np.ndarray
    scale: str = "similarity"
    features: dict[str, Any] | None = None


def path_column(paths: Sequence[Path]) -> pd.Series:
    """Paths as a column of the tables identify passes on, exactly as the filesystem names them.

    An object column: pandas' default string column cannot hold a name whose bytes are not UTF-8 (Python
    keeps them as surrogates, which Arrow refuses), and that photo would abort the whole survey.
    """
    return pd.Series([str(p) for p in paths], dtype=object)


def check_photos(photos: Sequence[Path]) -> tuple[list[Path], list[dict]]:
    """Split photos into readable ones and error rows (each fully decoded once with `load_rgb`)."""
    readable, errors = [], []
    for path in tqdm(photos, desc="check", unit="photo", disable=None, leave=False):
        try:
            load_rgb(path)
            readable.append(path)
        except InputError as err:
            log.warning("skipped: %s", printable(str(err)))
            errors.append({"photo": photo_text(path), "error": printable(str(err))})
    return readable, errors


def find_boxes(artefacts: Artefacts, images: pd.DataFrame) -> pd.DataFrame:
    """Boxes from the configured source: the trained detector, the given boxes CSV (matched by file name), or
    none (`box_source: none`: every crop is the whole photo)."""
    cfg = artefacts.crop_config
    if cfg.box_source == "none":  # whole photos, as the gallery's crops were cut
        return pd.DataFrame(columns=["image", "region", "x1", "y1", "x2", "y2", "conf"])
    if cfg.box_source == "detector":
        return detect_boxes(artefacts.detector_weights, images["path"].tolist(), cfg, names=images["image"].tolist())
    by_name = images.assign(image=[printable(Path(p).name) for p in images["path"]])  # the CSV names photos so
    boxes = given_boxes(artefacts.given_boxes, by_name, cfg, source=str(cfg.boxes_csv))
    key_of = dict(zip(by_name["image"], images["image"]))  # two photos with one file name: the last gets the box
    return boxes.assign(image=boxes["image"].map(key_of))


def embed_crops(artefacts: Artefacts, keys: Sequence[str], crops_dir: Path) -> np.ndarray:
    """Every member's embedding of the crops, concatenated in the selection's order (predict's rule)."""
    parts = []
    for member in artefacts.members:
        region = member.config.extract_region
        paths = [str(crops_dir / region / QUERY_SPLIT / f"{key}.jpg") for key in keys]
        table = pd.DataFrame({"image": list(keys), f"path_{region}": paths})
        parts.append((list(keys), member.embed(table)))
    return concat_embeddings(parts)[1]


def embed_photos(artefacts: Artefacts, images: pd.DataFrame, crops_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Detect, crop and embed readable photos (image = key, split, path), CHUNK_PHOTOS at a time."""
    tables, chunks = [], []
    with tqdm(total=len(images), desc="detect, crop, embed", unit="photo", disable=None, leave=False) as bar:
        for start in range(0, len(images), CHUNK_PHOTOS):
            chunk = images.iloc[start : start + CHUNK_PHOTOS]
            tables.append(crop_regions(chunk, find_boxes(artefacts, chunk), crops_dir, artefacts.crop_config))
            chunks.append(embed_crops(artefacts, chunk["image"].tolist(), crops_dir))
            bar.update(len(chunk))
    if not tables:
        return pd.DataFrame(columns=["image", "region", "x1", "y1", "x2", "y2", "source"]), np.zeros((0, 0), "f4")
    return pd.concat(tables, ignore_index=True), np.concatenate(chunks)


def region_box(boxes: pd.DataFrame, key: str, region: str) -> dict:
    """matches.csv's region and box of one photo: the embedded crop's rectangle; `full_image` without a box."""
    row = boxes[(boxes["image"] == key) & (boxes["region"] == region)].iloc[0]
    label = "full_image" if row["source"] == "full_image" else region
    return {"region": label, **{c: int(row[c]) for c in ("x1", "y1", "x2", "y2")}}


def query_local_features(artefacts: Artefacts, keys: Sequence[str], crops_dir: Path) -> dict[str, Any]:
    """The query crops' keypoints per region (for verifying their shortlists)."""
    from whale_matcher import extract_features

    match = artefacts.match_config
    return {
        region: extract_features(list(keys), [str(crops_dir / region / QUERY_SPLIT / f"{key}.jpg") for key in keys],
                                 match.region_features(region), progress=False)
        for region in match.regions
    }  # fmt: skip


def answer_queries(
    artefacts: Artefacts,
    keys: Sequence[str],
    query_emb: np.ndarray,
    crops_dir: Path,
    filters: Sequence[tuple[str, np.ndarray | None]] | None = None,
    groups: Sequence[str] | None = None,
) -> Composed:
    """The predict stage's answers for embedded photos (`compose_answers`), restricted and pooled by the survey.

    Args:
        filters: per photo, its restriction (text, allowed gallery rows or None) from the survey's metadata.
        groups: per photo, its encounter ("" none): an encounter's photos are answered together.
    """
    restrictions = partitions(*zip(*filters)) if filters else None
    queries = Queries(keys, query_emb, lambda: query_local_features(artefacts, keys, crops_dir), restrictions, groups)
    return compose_answers(artefacts.answer_context(), queries)


def recommendation(answers: Answers, row: int, calibrated: bool, threshold: float) -> dict:
    """One photo's call on the answers' scale: `recommendation`, `p_same`, `threshold` (the same on its five rows).

    The recommendation is the rule's first answer — the best candidate when its score reaches the threshold,
    else `new_individual` — so it never contradicts the ranking; the other four answers are the Kaggle MAP@5
    hedge, not a second opinion. `p_same` is the best candidate's P(same) (empty unless the rule is calibrated).
    """
    best = float(answers.ranked.scores[row][0]) if len(answers.ranked.scores[row]) else np.nan
    p_same = best if calibrated and np.isfinite(best) else np.nan
    return {"recommendation": answers.ids[row][0], "p_same": p_same, "threshold": threshold}


def identify(
    artefacts: Artefacts, photos: Sequence[Path], out_dir: Path, survey: Survey | None = None
) -> IdentifyResult:
    """Identify `photos` against the artefacts' gallery; crops are written under `<out_dir>/crops/`.

    With `survey` (a metadata sidecar), photos of one encounter are answered together and candidates are
    restricted as it says; `matches.csv` names each photo's encounter and restriction.

    Raises:
        InputError: only for problems of the artefacts; unreadable photos become error rows.
    """
    readable, errors = check_photos(photos)
    keys = [photo_key(i, p) for i, p in enumerate(readable)]
    images = pd.DataFrame({"image": keys, "split": QUERY_SPLIT, "path": path_column(readable)})
    boxes, query_emb = embed_photos(artefacts, images, out_dir / "crops")
    filters = survey.restrictions(readable) if survey is not None else [("", None)] * len(readable)
    groups = survey.encounters(readable) if survey is not None else [""] * len(readable)
    composed = answer_queries(artefacts, keys, query_emb, out_dir / "crops", filters, groups)
    answers, sims, idx, features = composed.answers, composed.sims, composed.idx, composed.features
    calibrated = artefacts.answer_rule.calibrator is not None
    species = [str(s) for s in query_species(answers.idx, artefacts.gallery.species, 1)]
    region = artefacts.members[0].config.extract_region
    rows: list[dict] = [{"photo": e["photo"], "rank": 0, "error": e["error"]} for e in errors]
    labels = artefacts.gallery.labels
    thresholds = answers.thresholds if answers.thresholds is not None else np.full(len(readable), np.nan)
    for i, name in enumerate(photo_text(p) for p in readable):
        score = {str(c): float(s) for c, s in zip(answers.ranked.ids[i], answers.ranked.scores[i]) if c != ""}
        best_sim = {}
        for sim, j in zip(sims[i], idx[i]):
            if j >= 0:
                best_sim.setdefault(str(labels[j]), float(sim))
        box = region_box(boxes, keys[i], region)
        call = recommendation(answers, i, calibrated, float(thresholds[i]))
        rows += [
            {"photo": name, "rank": rank, "individual_id": answer, "similarity": best_sim.get(answer, np.nan),
             "probability": score.get(answer, np.nan) if calibrated else np.nan,
             "species": species[i], **box, "encounter": groups[i], "filters": filters[i][0], "error": "", **call}
            for rank, answer in enumerate(answers.ids[i], start=1)
        ]  # fmt: skip
    order = {photo_text(p): n for n, p in enumerate(photos)}
    matches = pd.DataFrame(rows, columns=MATCH_COLUMNS).astype(dict.fromkeys(INTEGER_COLUMNS, "Int64"))
    matches = matches.assign(_order=matches["photo"].map(order)).sort_values(["_order", "rank"], kind="stable")
    photo_table = pd.DataFrame(
        {"photo": [photo_text(p) for p in readable], "key": keys, "image_id": [content_id(p) for p in readable],
         "species": species, "path": path_column(readable), "encounter": groups}
    )  # fmt: skip
    log.info("identified %d photos (%d unreadable)", len(readable), len(errors))
    return IdentifyResult(
        matches.drop(columns="_order").reset_index(drop=True), photo_table, query_emb, boxes, answers.scores,
        answers.idx, "probability" if calibrated else "similarity", features,
    )  # fmt: skip
