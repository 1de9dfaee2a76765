"""The review pages of `whale-reid identify`: each query photo (or encounter) beside its five candidates.

For every query: the full photo with the detected boxes, the crop that was embedded, and the top-5
individuals, each with up to PHOTOS_PER_CANDIDATE gallery photos, its score as a bar with the threshold line
and — when the answers were verified — the verified keypoint matches drawn between the query crop and its best
photo. Above them sits the one call (`matches.csv`'s `recommendation`): the best candidate when its score reaches
the threshold, else a new individual; the candidates below are the evidence, best first, `new_individual` left out.
Photos of one encounter share a section and one decision. The pictures are files (`ImageFolder`);
`whale_reid.review.pages.write_review` writes the pages.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from whale_core import NEW_INDIVIDUAL, InputError, atomic_write_bytes, inside, load_rgb, safe_name
from whale_matcher import Features
from whale_reid.answers.verification import MatchConfig, evidence_picture, feature_rows, row_lookup
from whale_reid.common.html import draw_boxes, jpeg_bytes
from whale_reid.identify.queries import IdentifyResult
from whale_retrieval import AnswerRule, GalleryIndex

IMAGES = "img"  #: the pictures' folder inside the review folder
PHOTOS_PER_CANDIDATE = 3  #: gallery photos shown per candidate (its best neighbours first)
GALLERY_SIDE, PHOTO_SIDE, EVIDENCE_SIDE = 480, 480, 640  #: longest side of the pictures written, in pixels


class ImageFolder:
    """Pictures written as JPEG files into `<review dir>/img/`, referenced relative to the pages."""

    def __init__(self, review_dir: Path) -> None:
        self.review_dir = review_dir
        self.written: set[str] = set()

    def add(self, name: str, img: Image.Image, max_side: int) -> str:
        """Write `img` (fit into `max_side`) once under `name` (a plain file name); its page-relative path."""
        name = safe_name(name, "review picture")
        if name not in self.written:
            atomic_write_bytes(inside(self.review_dir / IMAGES, name), jpeg_bytes(img, max_side))
            self.written.add(name)
        return f"{IMAGES}/{name}"

    def relative(self, path: Path) -> str:
        """A file of the run folder (a crop) as the pages reference it."""
        return Path(os.path.relpath(path, self.review_dir)).as_posix()


@dataclass(frozen=True)
class Evidence:
    """What the match drawings of a verified query photo need.

    Attributes:
        query_crop, match: the crop that was verified and the matcher settings.
        query_features, query_row: the query photos' features of the shown region, as verification extracted them,
            and this photo's row (None / -1 when not kept: the crops are then extracted again).
        gallery_features, gallery_rows: the gallery's features of that region and its image id → row map.
    """

    query_crop: Path
    match: MatchConfig
    query_features: Features | None = None
    query_row: int = -1
    gallery_features: Features | None = None
    gallery_rows: Mapping[str, int] = field(default_factory=dict)

    def kept_pair(self, gallery_image: str) -> tuple[Features, int, Features, int] | None:
        """(query features, row, gallery features, row) for `evidence_picture`, or None where either is not kept."""
        gallery_row = self.gallery_rows.get(gallery_image, -1)
        if self.query_features is None or self.query_row < 0 or gallery_row < 0:
            return None
        return self.query_features, self.query_row, self.gallery_features, gallery_row


@dataclass(frozen=True)
class Candidate:
    """One of a query's top-5 individuals and its gallery photos.

    Attributes:
        score: the answer rule's score of its best photo: cosine similarity, or P(same) when verified (`scale`).
        rank: its rank in `matches.csv` (None for a candidate topped up past the answers).
        images: page-relative pictures of its best gallery photos; `gallery_photos` their image ids and
            `originals` file URIs of the originals ("" when not on this machine).
        evidence: page-relative picture of the verified keypoint matches ("" when not verified), with `inliers`.
    """

    individual_id: str
    score: float
    species: str
    rank: int | None
    images: list[str]
    gallery_photos: list[str]
    originals: list[str]
    scale: str = "similarity"
    evidence: str = ""
    inliers: int | None = None


@dataclass(frozen=True)
class MemberPhoto:
    """One query photo of a section: the photo with its boxes, its full-size crop, the original's file URI."""

    photo: str
    image: str
    crop: str
    original: str = ""


@dataclass(frozen=True)
class QueryView:
    """What the page shows for one query photo, or for the photos of one encounter (decided together).

    Attributes:
        key: the decision's key on the page (the photo, or `encounter:<id>`).
        new_rank: 0-based rank at which `new_individual` was inserted (None when not in the top 5).
        threshold: the query's threshold on the score's scale (the bar's line).
        call, call_score: the recommendation (an individual id, or `new_individual`) and the best candidate's
            score it rests on (P(same) when verified), compared with `threshold`.
        filters: the candidate restrictions applied (location, date window, side), as text.
        error: set for a photo that could not be read; the page shows the message instead.
    """

    photo: str
    key: str = ""
    members: list[MemberPhoto] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    new_rank: int | None = None
    species: str = ""
    threshold: float = float("nan")
    filters: str = ""
    encounter: str = ""
    error: str | None = None
    call: str = ""
    call_score: float = float("nan")

    @property
    def scale(self) -> str:
        """What the scores are: "probability" (P(same)) or "similarity"."""
        return self.candidates[0].scale if self.candidates else "similarity"

    @property
    def photos(self) -> list[str]:
        """The photos this section's decision applies to."""
        return [m.photo for m in self.members] or [self.photo]


def placeholder(text: str = "no photo") -> Image.Image:
    """A small grey image with a label, for a gallery row whose photo is not on this machine."""
    img = Image.new("RGB", (160, 120), (60, 70, 80))
    ImageDraw.Draw(img).text((10, 52), text, fill=(230, 230, 230))
    return img


def file_uri(path: Path | None) -> str:
    return path.resolve().as_uri() if path is not None and path.is_file() else ""


class GalleryPhotos:
    """Gallery pictures by image id, each written once into the pages' image folder.

    Args:
        locate: the file to show for a gallery image id (its crop, else the photo), or None when absent.
        images: where the pictures are written.
        original: the full-resolution original of an image id, or None (its crop is linked then).
    """

    def __init__(
        self, locate: Callable[[str], Path | None], images: ImageFolder,
        original: Callable[[str], Path | None] | None = None,
    ) -> None:  # fmt: skip
        self.locate, self.images, self.original = locate, images, original or locate
        self.cache: dict[str, str] = {}

    def image(self, image_id: str) -> str:
        """The page-relative picture of a gallery photo (a placeholder when absent or unreadable)."""
        if image_id not in self.cache:
            path = self.locate(image_id)
            name = f"g-{hashlib.sha256(image_id.encode('utf-8', 'surrogateescape')).hexdigest()[:20]}.jpg"
            try:
                picture = load_rgb(path) if path else placeholder()
            except InputError:
                picture = placeholder("unreadable")
            self.cache[image_id] = self.images.add(name, picture, GALLERY_SIDE)
        return self.cache[image_id]


def candidate_ids(row: int, result: IdentifyResult, answers: list[str], gallery: GalleryIndex) -> list[str]:
    """The answers' real ids (new_individual left out), topped up from the ranking to five."""
    sims, idx = result.similarities[row], result.neighbours[row]
    ranked = [str(gallery.labels[j]) for j in idx[np.isfinite(sims) & (idx >= 0)]]
    ids = [a for a in answers if a != NEW_INDIVIDUAL]
    for label in ranked:
        if len(ids) >= 5:
            break
        if label not in ids:
            ids.append(label)
    return ids[:5]


def best_rows(
    rows: list[int], result: IdentifyResult, label: str, gallery: GalleryIndex
) -> list[tuple[int, float, int]]:
    """(gallery row, score, query row) of that individual's photos: the neighbours of any of the query rows,
    best first, then its other gallery photos (score NaN), each photo once."""
    found: dict[int, tuple[int, float, int]] = {}
    for i in rows:
        for sim, j in zip(result.similarities[i], result.neighbours[i]):
            if j >= 0 and gallery.labels[j] == label and (j not in found or sim > found[j][1]):
                found[int(j)] = (int(j), float(sim), i)
    ordered = sorted(found.values(), key=lambda t: -t[1])
    others = [(int(j), float("nan"), rows[0]) for j in np.flatnonzero(gallery.labels == label) if int(j) not in found]
    return (ordered + others)[:PHOTOS_PER_CANDIDATE]


def _candidate(
    label: str, rank: int | None, rows: list[int], result: IdentifyResult, gallery: GalleryIndex,
    photos: GalleryPhotos, evidence: dict[int, Evidence],
) -> Candidate:  # fmt: skip
    shown = best_rows(rows, result, label, gallery)
    j, score, query_row = shown[0]
    ids = [str(gallery.image_ids[r]) for r, _, _ in shown]
    picture, inliers = "", None
    gallery_crop = photos.locate(ids[0])
    verified = evidence.get(query_row)
    if verified is not None and gallery_crop is not None and np.isfinite(score):
        try:
            drawn, inliers = evidence_picture(verified.query_crop, gallery_crop, verified.match, height=320,
                                              features=verified.kept_pair(ids[0]))  # fmt: skip
            name = f"e-{verified.query_crop.stem}-{photos.image(ids[0]).rsplit('/', 1)[-1]}"  # g-<hash of the id>.jpg
            picture = photos.images.add(name, Image.fromarray(drawn), EVIDENCE_SIDE)
        except InputError:
            inliers = None
    return Candidate(
        label, score, str(gallery.species[j]), rank, [photos.image(i) for i in ids], ids,
        [file_uri(photos.original(i)) for i in ids], result.scale, picture, inliers,
    )  # fmt: skip


def _number(value: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def recommended(
    matched, candidates: list[Candidate], rule: AnswerRule | None, neighbours: np.ndarray, gallery: GalleryIndex
) -> tuple[float, str, float]:
    """(threshold, call, best score) of one section: `matches.csv`'s recommendation columns where written, else
    the same rule on the page's data (the first answer; the first candidate's score; the rule's threshold)."""
    first = matched.iloc[0]
    call = str(first.get("recommendation", "") or "")
    if not call or call == "nan":
        call = str(first["individual_id"])
    threshold = _number(first.get("threshold"))
    if not np.isfinite(threshold) and rule is not None:
        threshold = float(np.mean(rule.post.thresholds(neighbours, gallery.species)))
    score = _number(first.get("p_same"))
    if not np.isfinite(score) and candidates:
        score = candidates[0].score
    return threshold, call, score


def _groups(result: IdentifyResult) -> dict[str, list[int]]:
    """Readable photos' rows by section: one per encounter (its `encounter` column), else one per photo."""
    encounters = result.photos["encounter"] if "encounter" in result.photos else [""] * len(result.photos)
    groups: dict[str, list[int]] = {}
    for i, (photo, encounter) in enumerate(zip(result.photos["photo"], encounters)):
        groups.setdefault(f"encounter:{encounter}" if encounter else str(photo), []).append(i)
    return groups


def build_views(
    result: IdentifyResult,
    gallery: GalleryIndex,
    crops_dir: Path,
    region: str,
    photos: GalleryPhotos,
    match: MatchConfig | None = None,
    rule: AnswerRule | None = None,
    gallery_features: Features | None = None,
) -> list[QueryView]:
    """One QueryView per photo of `result.matches` (error rows included) or per encounter, in that order.

    With `match` (the answers were verified), each candidate shows the verified keypoint matches between the
    query crop and that candidate's best gallery crop, drawn from the features verification used (the photos'
    `result.features` and `gallery_features` of `region`; crops without are extracted again); `rule` gives each
    query's threshold (species offsets).
    """
    query_features, keys = (result.features or {}).get(region), result.photos["key"].tolist()
    no_rows = [-1] * len(keys)
    query_rows = no_rows if query_features is None else row_lookup(query_features, keys, "query", allow_missing=True)
    gallery_rows = {} if gallery_features is None else feature_rows(gallery_features)  # once, not per pair
    verified = match is not None and result.scale == "probability"
    images, groups = photos.images, _groups(result)
    section_of = {result.photos["photo"].iloc[i]: key for key, rows in groups.items() for i in rows}
    views, done = [], set()
    for photo, matched in result.matches.groupby("photo", sort=False):
        if photo not in section_of:
            views.append(QueryView(photo=str(photo), key=str(photo), error=str(matched["error"].iloc[0])))
            continue
        key = section_of[photo]
        if key in done:
            continue
        done.add(key)
        rows, members, evidence = groups[key], [], {}
        for i in rows:
            qkey = result.photos["key"].iloc[i]
            drawn = result.boxes[(result.boxes["image"] == qkey) & (result.boxes["source"] != "full_image")]
            boxes = [(r.region, r.x1, r.y1, r.x2, r.y2) for r in drawn.itertuples()]
            path = Path(result.photos["path"].iloc[i])
            full = images.add(f"q-{qkey}.jpg", draw_boxes(load_rgb(path), boxes), PHOTO_SIDE)
            query_crop = crops_dir / region / "query" / f"{qkey}.jpg"
            members.append(MemberPhoto(str(result.photos["photo"].iloc[i]), full, images.relative(query_crop),
                                       file_uri(path)))  # fmt: skip
            if verified:
                evidence[i] = Evidence(query_crop, match, query_features, int(query_rows[i]), gallery_features,
                                       gallery_rows)  # fmt: skip
        answers = matched["individual_id"].tolist()
        candidates = [
            _candidate(label, answers.index(label) + 1 if label in answers else None, rows, result, gallery, photos,
                       evidence)
            for label in candidate_ids(rows[0], result, answers, gallery)
        ]  # fmt: skip
        threshold, call, call_score = recommended(matched, candidates, rule, result.neighbours[rows[:1]], gallery)
        filters = str(matched["filters"].iloc[0]) if "filters" in matched else ""
        encounter = key.removeprefix("encounter:") if key.startswith("encounter:") else ""
        title = f"encounter {encounter} ({len(rows)} photos)" if encounter else str(photo)
        views.append(
            QueryView(
                photo=title, key=key, members=members, candidates=candidates,
                new_rank=answers.index(NEW_INDIVIDUAL) if NEW_INDIVIDUAL in answers else None,
                species=str(result.photos["species"].iloc[rows[0]]), threshold=threshold, filters=filters,
                encounter=encounter, call=call, call_score=call_score,
            )
        )  # fmt: skip
    return views
