"""The review page of `whale-reid identify`: each query photo beside its five candidates.

For every query: the full photo with the detected boxes, the crop that was embedded, and the
best-matching gallery photo of each of the top-5 individuals with similarity and species; where
the call is `new_individual`, a dashed card sits at that rank. A decision per query (one of the
five, or a new individual with a name) is exported as `decisions.csv` for `whale-reid enroll`.
Keyboard: ←/→ (or j/k) between queries, 1–5 picks a candidate, n = new individual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from whale_core import InputError, load_rgb
from whale_reid.html import draw_boxes, esc, image_data_uri, json_for_script, page
from whale_reid.identify import IdentifyResult
from whale_reid.verification import MatchConfig, evidence_picture
from whale_retrieval import GalleryIndex

NEW_INDIVIDUAL = "new_individual"
Evidence = tuple[Path, MatchConfig] | None  # the query crop and the matcher settings, when verified
NEW_CARD = (
    "<figure class='newcard' data-choice='new'><div class='newbox'>new_individual<br>(below threshold)</div>"
    "<figcaption>the call: no candidate is similar enough</figcaption></figure>"
)
#: Review-only layout on top of the shared style: a wider page, the picked card outlined, clickable cards.
REVIEW_STYLE = (
    "<style>main{max-width:1900px} figure[data-choice]{cursor:pointer}"
    " figure.picked img, figure.picked .newbox{outline:4px solid var(--ok)}"
    " img.broken{outline:3px solid var(--bad)}</style>"
)


@dataclass(frozen=True)
class Candidate:
    """One of a query's top-5 individuals and its best-matching gallery photo (a data URI).

    Attributes:
        score: the answer rule's score of that photo: cosine similarity, or P(same) when verified (`scale`).
        inliers: verified keypoint matches drawn in the picture (None when the answers are not verified);
            the picture is then the query crop beside the gallery crop with a line per match.
    """

    individual_id: str
    score: float
    species: str
    image_uri: str
    gallery_photo: str = ""
    scale: str = "similarity"
    inliers: int | None = None


@dataclass(frozen=True)
class QueryView:
    """What the page shows for one query photo.

    Attributes:
        new_rank: 0-based rank at which `new_individual` was inserted (None when not in the top 5).
        error: set for a photo that could not be read; the page shows the message instead.
    """

    photo: str
    photo_uri: str = ""
    crop_uri: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    new_rank: int | None = None
    species: str = ""
    error: str | None = None


def _candidate_card(index: int, cand: Candidate) -> str:
    value = f"{cand.score:.3f}" if np.isfinite(cand.score) else "n/a"
    score = f"P(same) {value}" if cand.scale == "probability" else f"similarity {value}"
    evidence = f" · {cand.inliers} matches" if cand.inliers is not None else ""
    return (
        f"<figure class='cand' data-choice='c{index}'><img src='{cand.image_uri}' alt='{esc(cand.individual_id)}'>"
        f"<figcaption>#{index + 1} <b>{esc(cand.individual_id)}</b><br>"
        f"<span class='sim'>{score}</span>{evidence} · {esc(cand.species)}"
        f"<br><span class='muted'>{esc(cand.gallery_photo)}</span></figcaption></figure>"
    )


def _query_section(index: int, query: QueryView) -> str:
    head = f"<h2>{esc(query.photo)} <span class='muted'>{esc(query.species)}</span></h2>"
    if query.error:
        error = f"<p class='newbox'>{esc(query.error)}</p>"
        return f"<section class='card query' data-index='{index}'>{head}{error}</section>"
    cards = [_candidate_card(i, c) for i, c in enumerate(query.candidates)]
    if query.new_rank is not None:
        cards.insert(query.new_rank, NEW_CARD)
    name = f"q{index}"
    options = "".join(
        f"<label><input type='radio' name='{name}' value='c{i}'> {i + 1}: {esc(c.individual_id)}</label>"
        for i, c in enumerate(query.candidates)
    )
    return (
        f"<section class='card query' data-index='{index}'>{head}<div class='row'>"
        f"<figure class='photo'><img src='{query.photo_uri}' alt='photo'>"
        "<figcaption>photo + boxes</figcaption></figure>"
        f"<figure><img src='{query.crop_uri}' alt='crop'><figcaption>query crop</figcaption></figure>"
        f"{''.join(cards)}</div><div class='decision'>{options}"
        f"<label><input type='radio' name='{name}' value='new'> new individual:</label>"
        f"<input type='text' placeholder='name / id' aria-label='new individual id'>"
        f"<label><input type='radio' name='{name}' value='skip' checked> undecided</label></div></section>"
    )


def render_review_page(queries: list[QueryView], title: str = "whale-reid · review matches", note: str = "") -> str:
    """The complete self-contained HTML page; `note` (e.g. the threshold in use) is shown in the header."""
    data = {"queries": [{"photo": q.photo, "candidates": [c.individual_id for c in q.candidates]} for q in queries]}
    header = (
        f"<header><h1>{esc(title)}</h1><span id='position'></span><span class='muted'>{esc(note)}</span>"
        "<span class='hint'>←/→ next photo · 1–5 pick a candidate · n new individual</span>"
        "<button id='export'>Export decisions.csv</button></header>"
    )
    body = REVIEW_STYLE + header + "<main>" + "".join(_query_section(i, q) for i, q in enumerate(queries)) + "</main>"
    body += f"<script id='review-data' type='application/json'>{json_for_script(data)}</script>"
    script = (resources.files("whale_reid") / "assets" / "review.js").read_text(encoding="utf-8")
    return page(title, body, script)


def placeholder_uri(text: str = "no photo") -> str:
    """A small grey image with a label, for a gallery row whose photo is not on this machine."""
    img = Image.new("RGB", (160, 120), (60, 70, 80))
    ImageDraw.Draw(img).text((10, 52), text, fill=(230, 230, 230))
    return image_data_uri(img)


class GalleryPhotos:
    """Data URIs of gallery photos by image id, each file read once.

    Args:
        locate: the file to show for a gallery image id (its crop, else the photo), or None when absent.
    """

    def __init__(self, locate: Callable[[str], Path | None]) -> None:
        self.locate = locate
        self.cache: dict[str, str] = {}

    def uri(self, image_id: str) -> str:
        if image_id not in self.cache:
            path = self.locate(image_id)
            try:
                self.cache[image_id] = image_data_uri(load_rgb(path), max_side=240) if path else placeholder_uri()
            except InputError:
                self.cache[image_id] = placeholder_uri("unreadable")
        return self.cache[image_id]


def _candidates(row: int, result: IdentifyResult, answers: list[str], gallery: GalleryIndex) -> list[str]:
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


def _best_gallery_row(row: int, result: IdentifyResult, label: str, gallery: GalleryIndex) -> tuple[int, float]:
    """The highest-similarity neighbour of that individual (any of its rows, similarity NaN, if none is near)."""
    for sim, j in zip(result.similarities[row], result.neighbours[row]):
        if j >= 0 and gallery.labels[j] == label:
            return int(j), float(sim)
    return int(np.flatnonzero(gallery.labels == label)[0]), float("nan")


def _candidate(
    label: str, row: int, result: IdentifyResult, gallery: GalleryIndex, photos: GalleryPhotos, evidence: Evidence
) -> Candidate:
    j, score = _best_gallery_row(row, result, label, gallery)
    image_id = str(gallery.image_ids[j])
    uri, inliers = photos.uri(image_id), None
    gallery_crop = photos.locate(image_id)
    if evidence is not None and gallery_crop is not None and np.isfinite(score):
        query_crop, match = evidence
        try:
            picture, inliers = evidence_picture(query_crop, gallery_crop, match)
            uri = image_data_uri(Image.fromarray(picture), max_side=420)
        except InputError:
            inliers = None
    return Candidate(label, score, str(gallery.species[j]), uri, image_id, result.scale, inliers)


def build_views(
    result: IdentifyResult,
    gallery: GalleryIndex,
    crops_dir: Path,
    region: str,
    photos: GalleryPhotos,
    match: MatchConfig | None = None,
) -> list[QueryView]:
    """One QueryView per photo of `result.matches` (error rows included), in that order.

    With `match` (the answers were verified), each candidate's picture shows the verified keypoint matches
    between the query crop and that candidate's best gallery crop.
    """
    by_photo = {p: i for i, p in enumerate(result.photos["photo"])}
    views = []
    for photo, rows in result.matches.groupby("photo", sort=False):
        if photo not in by_photo:
            views.append(QueryView(photo=str(photo), error=str(rows["error"].iloc[0])))
            continue
        i = by_photo[photo]
        key, answers = result.photos["key"].iloc[i], rows["individual_id"].tolist()
        drawn = result.boxes[(result.boxes["image"] == key) & (result.boxes["source"] != "full_image")]
        boxes = [(r.region, r.x1, r.y1, r.x2, r.y2) for r in drawn.itertuples()]
        full = draw_boxes(load_rgb(result.photos["path"].iloc[i]), boxes)
        query_crop = crops_dir / region / "query" / f"{key}.jpg"
        evidence = (query_crop, match) if match is not None and result.scale == "probability" else None
        candidates = [_candidate(label, i, result, gallery, photos, evidence)
                      for label in _candidates(i, result, answers, gallery)]  # fmt: skip
        views.append(
            QueryView(
                photo=str(photo),
                photo_uri=image_data_uri(full, max_side=480),
                crop_uri=image_data_uri(load_rgb(query_crop)),
                candidates=candidates,
                new_rank=answers.index(NEW_INDIVIDUAL) if NEW_INDIVIDUAL in answers else None,
                species=str(result.photos["species"].iloc[i]),
            )
        )
    return views
