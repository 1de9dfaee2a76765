"""The review page of `whale-reid identify`: each query photo beside its five candidates.

For every query: the full photo with the detected boxes, the crop that was embedded, and the
best-matching gallery photo of each of the top-5 individuals with similarity and species; where
the call is `new_individual`, a dashed card sits at that rank. A decision per query (one of the
five, or a new individual with a name) is exported as `decisions.csv` for `whale-reid enroll`.
Keyboard: ←/→ (or j/k) between queries, 1–5 picks a candidate, n = new individual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from whale_reid.html import esc, json_for_script, page

NEW_INDIVIDUAL = "new_individual"
NEW_CARD = "<figure class='newcard'><div class='newbox'>new_individual<br>(below threshold)</div></figure>"


@dataclass(frozen=True)
class Candidate:
    """One of a query's top-5 individuals and its best-matching gallery photo (a data URI)."""

    individual_id: str
    similarity: float
    species: str
    image_uri: str
    gallery_photo: str = ""


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
    return (
        f"<figure class='cand'><img src='{cand.image_uri}' alt='{esc(cand.individual_id)}'>"
        f"<figcaption>#{index + 1} <b>{esc(cand.individual_id)}</b><br>"
        f"<span class='sim'>{cand.similarity:.3f}</span> · {esc(cand.species)}"
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


def render_review_page(queries: list[QueryView], title: str = "whale-reid · review matches") -> str:
    """The complete self-contained HTML page."""
    data = {"queries": [{"photo": q.photo, "candidates": [c.individual_id for c in q.candidates]} for q in queries]}
    header = (
        f"<header><h1>{esc(title)}</h1><span id='position'></span>"
        "<span class='hint'>←/→ next photo · 1–5 pick a candidate · n new individual</span>"
        "<button id='export'>Export decisions.csv</button></header>"
    )
    body = header + "<main>" + "".join(_query_section(i, q) for i, q in enumerate(queries)) + "</main>"
    body += f"<script id='review-data' type='application/json'>{json_for_script(data)}</script>"
    script = (resources.files("whale_reid") / "assets" / "review.js").read_text(encoding="utf-8")
    return page(title, body, script)
