"""The review pages of an identify run as files: pages of N sections, an index with progress, pictures beside them.

    <out>/review.html              the index: every page with its progress, the run's counter, export
    <out>/review/page-0001.html    `page_size` sections (a photo, or the photos of one encounter) each
    <out>/review/img/*.jpg         every picture the pages show (photos with boxes, gallery photos, evidence)
    <out>/crops/...                the embedded crops, shown full size in the compare view

No picture is inlined, so a page's HTML is a few KB a photo however large the survey; everything is referenced
by relative paths inside `<out>`, so the folder opens from disk (file://) anywhere, with no server or network.
The pages keep the reviewer's decisions in the browser's localStorage under the identify run's id (`run.json`),
so a reload, another page or the index sees them; `Export decisions.csv` writes them for `whale-reid enroll`.
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from whale_core import atomic_write_bytes, atomic_write_text, inside, safe_name
from whale_reid.html import esc, jpeg_bytes, json_for_script, page

if TYPE_CHECKING:
    from whale_reid.review import Candidate, QueryView

INDEX = "review.html"
REVIEW_DIR = "review"
IMAGES = "img"
DEFAULT_PAGE_SIZE = 50
TITLE = "whale-reid · review matches"
NEW_CARD = (
    "<figure class='newcard' data-choice='new'><div class='newbox'>new_individual<br>(below threshold)</div>"
    "<figcaption>#{rank} the call: no candidate is similar enough</figcaption></figure>"
)
HINT = "←/→ photo · 1–5 pick rank · n new · Esc/Enter leave the name · u next undecided · z undo · c compare"


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


def _bar(score: float, threshold: float, scale: str) -> str:
    """The score as a bar on [0, 1] with the threshold as a line."""
    width = 0.0 if not math.isfinite(score) else min(max(score, 0.0), 1.0) * 100
    line = f"<i style='left:{min(max(threshold, 0.0), 1.0) * 100:.1f}%'></i>" if math.isfinite(threshold) else ""
    label = "P(same)" if scale == "probability" else "similarity"
    title = f"{label} {score:.3f}" + (f", threshold {threshold:.3f}" if math.isfinite(threshold) else "")
    return f"<div class='pbar' title='{esc(title)}'><b style='width:{width:.1f}%'></b>{line}</div>"


def _card(index: int, cand: Candidate, threshold: float) -> str:
    value = f"{cand.score:.3f}" if math.isfinite(cand.score) else "n/a"
    score = f"P(same) {value}" if cand.scale == "probability" else f"similarity {value}"
    evidence = f" · {cand.inliers} matches" if cand.inliers is not None else ""
    rank = f"#{cand.rank}" if cand.rank is not None else "(6th)"
    more = f" · +{len(cand.images) - 1} photos" if len(cand.images) > 1 else ""
    return (
        f"<figure class='cand' data-choice='c{index}' data-rank='{cand.rank or ''}'>"
        f"<img src='{esc(cand.evidence or cand.images[0])}' alt='{esc(cand.individual_id)}'>"
        f"{_bar(cand.score, threshold, cand.scale)}<figcaption>{rank} <b>{esc(cand.individual_id)}</b><br>"
        f"<span class='sim'>{score}</span>{evidence} · {esc(cand.species)}"
        f"<br><span class='muted'>{esc(cand.gallery_photos[0])}{more}</span></figcaption></figure>"
    )


def render_section(index: int, query: QueryView) -> str:
    """One query's (or encounter's) section: its photos and crops, the candidates, the decision controls."""
    filters = f" <span class='filters'>candidates: {esc(query.filters)}</span>" if query.filters else ""
    head = f"<h2>{esc(query.photo)} <span class='muted'>{esc(query.species)}</span>{filters}</h2>"
    attrs = f"class='card query' data-index='{index}' data-key='{esc(query.key)}'"
    if query.error:
        return f"<section {attrs}>{head}<p class='newbox'>{esc(query.error)}</p></section>"
    photos = "".join(
        f"<figure class='photo'><img src='{esc(m.image)}' alt='photo'><figcaption>{esc(m.photo)}"
        + (f" · <a href='{esc(m.original)}' target='_blank'>original</a>" if m.original else "")
        + f"</figcaption></figure><figure class='crop'><img src='{esc(m.crop)}' alt='crop'><figcaption>query crop"
        "</figcaption>"
        "</figure>"
        for m in query.members
    )
    cards = [_card(i, c, query.threshold) for i, c in enumerate(query.candidates)]
    if query.new_rank is not None:
        cards.insert(query.new_rank, NEW_CARD.format(rank=query.new_rank + 1))
    name = f"q{index}"
    options = "".join(
        f"<label><input type='radio' name='{name}' value='c{i}'> {f'#{c.rank}' if c.rank else '(6th)'}: "
        f"{esc(c.individual_id)}</label>"
        for i, c in enumerate(query.candidates)
    )
    return (
        f"<section {attrs}>{head}<div class='row'>{photos}</div><div class='cands'>{''.join(cards)}</div>"
        f"<div class='decision'>{options}"
        f"<label><input type='radio' name='{name}' value='new'> new individual:</label>"
        "<input type='text' placeholder='name / id' aria-label='new individual id'>"
        f"<label><input type='radio' name='{name}' value='skip' checked> undecided</label>"
        "<button class='compare-open'>compare (c)</button></div></section>"
    )


def _query_data(query: QueryView) -> dict:
    return {
        "key": query.key, "photos": query.photos, "new_rank": query.new_rank, "error": bool(query.error),
        "members": [{"crop": m.crop, "original": m.original, "photo": m.photo} for m in query.members],
        "candidates": [
            {"id": c.individual_id, "rank": c.rank, "images": c.images, "originals": c.originals,
             "gallery_photos": c.gallery_photos, "evidence": c.evidence}
            for c in query.candidates
        ],
    }  # fmt: skip


def _script() -> str:
    return (resources.files("whale_reid") / "assets" / "review.js").read_text(encoding="utf-8")


def _header(counter: str, note: str, links: str) -> str:
    return (
        f"<header><h1>{esc(TITLE)}</h1><span id='position'></span><span id='counter'>{counter}</span>"
        f"<span class='muted'>{esc(note)}</span>{links}<span class='hint'>{esc(HINT)}</span>"
        "<button id='export'>Export decisions.csv</button></header>"
    )


COMPARE = (
    "<div id='compare' hidden><div class='pane'><div class='zoom'><img id='cmp-query' alt='query crop'></div>"
    "<p id='cmp-query-links'></p></div><div class='pane'><div class='zoom'><img id='cmp-cand' alt='candidate'></div>"
    "<p id='cmp-cand-links'></p><div id='cmp-thumbs'></div></div>"
    "<p class='muted'>wheel: zoom · drag: pan · 0: reset · Esc: close</p></div>"
)


def write_review(
    out: Path, views: list[QueryView], *, run_id: str, note: str = "", page_size: int = DEFAULT_PAGE_SIZE
) -> list[Path]:
    """Write the pages (`page_size` sections each) and the index into the run folder `out`; the page files.

    The pictures the views reference must already be in `<out>/review/img/` (`ImageFolder`).
    """
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    review_dir = out / REVIEW_DIR
    chunks = [views[i : i + page_size] for i in range(0, len(views), page_size)] or [[]]
    names = [f"page-{n + 1:04d}.html" for n in range(len(chunks))]
    written, style = [], "<style>main{max-width:1900px}</style>"
    decidable = sum(1 for q in views if not q.error)
    for n, chunk in enumerate(chunks):
        offset = n * page_size
        links = " ".join(
            f"<a href='{href}' id='{rel}'>{label}</a>"
            for href, rel, label in (("../" + INDEX, "to-index", "index"),
                                     (names[n - 1] if n else "", "prev-page", "← page"),
                                     (names[n + 1] if n + 1 < len(names) else "", "next-page", "page →"))
            if href
        )  # fmt: skip
        data = {"run": run_id, "page": n + 1, "pages": len(chunks), "total": decidable, "offset": offset,
                "queries": [_query_data(q) for q in chunk]}  # fmt: skip
        body = style + _header("", note, links) + COMPARE + "<main>"
        body += "".join(render_section(offset + i, q) for i, q in enumerate(chunk)) + "</main>"
        body += f"<script id='review-data' type='application/json'>{json_for_script(data)}</script>"
        html = page(f"{TITLE} · page {n + 1}", body, _script())
        written.append(atomic_write_text(inside(review_dir, names[n]), html))
    pages = [{"href": f"{REVIEW_DIR}/{name}", "keys": [q.key for q in chunk if not q.error],
              "first": chunk[0].photo if chunk else "", "last": chunk[-1].photo if chunk else ""}
             for name, chunk in zip(names, chunks)]  # fmt: skip
    rows = "".join(
        f"<tr data-page='{n}'><td><a href='{esc(p['href'])}'>page {n + 1}</a></td><td>{esc(p['first'])} … "
        f"{esc(p['last'])}</td><td class='progress'></td></tr>"
        for n, p in enumerate(pages)
    )
    data = {"run": run_id, "index": True, "total": decidable, "pages": pages}
    body = _header("", note, "") + f"<main><section class='card'><table>{rows}</table></section></main>"
    body += f"<script id='review-data' type='application/json'>{json_for_script(data)}</script>"
    atomic_write_text(out / INDEX, page(TITLE, body, _script()))
    return written
