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
from importlib import resources
from pathlib import Path

from whale_core import NEW_INDIVIDUAL, atomic_write_text, inside
from whale_reid.common.html import esc, json_for_script, page, url
from whale_reid.review.views import Candidate, QueryView

INDEX = "review.html"
REVIEW_DIR = "review"
DEFAULT_PAGE_SIZE = 50
TITLE = "whale-reid · review matches"
#: Every key of the pages, as the help lists them. Only the keys that say so decide; looking never does.
KEYS = (
    ("←/→ or j/k", "previous / next photo (in compare: previous / next candidate)"),
    ("a", "accept the recommendation (a new individual: type its name)"),
    ("1–5", "decide: the candidate of that number is the individual"),
    ("n", "decide: a new individual (type a name; Enter or Esc leaves the field)"),
    ("z, Backspace", "undo this photo's decision"), ("u", "next undecided photo"),
    ("c", "compare: the query beside a candidate, large"),
    ("Shift+1–5", "compare with that candidate (decides nothing)"),
    ("m", "compare: keypoint matches on / off"), ("p", "compare: the candidate's next photo"),
    ("q", "compare: the encounter's next query photo"), ("wheel, drag, 0", "compare: zoom, pan, reset (both sides)"),
    ("Esc", "close compare / help"), ("?", "this help"),
)  # fmt: skip
HINT = "a accept · 1–5 decide · n new · c compare · ? every key"
HELP = (
    "<div id='help' hidden><h2>Keys</h2><table>"
    + "".join(f"<tr><th><kbd>{esc(k)}</kbd></th><td>{esc(v)}</td></tr>" for k, v in KEYS)
    + "</table></div>"
)


def _bar(score: float, threshold: float, scale: str) -> str:
    """The score as a bar on [0, 1] with the threshold as a line."""
    width = 0.0 if not math.isfinite(score) else min(max(score, 0.0), 1.0) * 100
    line = f"<i style='left:{min(max(threshold, 0.0), 1.0) * 100:.1f}%'></i>" if math.isfinite(threshold) else ""
    label = "P(same)" if scale == "probability" else "similarity"
    title = f"{label} {score:.3f}" + (f", threshold {threshold:.3f}" if math.isfinite(threshold) else "")
    return f"<div class='pbar' title='{esc(title)}'><b style='width:{width:.1f}%'></b>{line}</div>"


def _score_text(score: float, scale: str) -> str:
    value = f"{score:.3f}" if math.isfinite(score) else "n/a"
    return f"P(same) {value}" if scale == "probability" else f"similarity {value}"


def _card(index: int, cand: Candidate, threshold: float) -> str:
    """A candidate as evidence: its best photo (large), its score bar, number (the 1–5 key) and verified matches."""
    evidence = f" · {cand.inliers} keypoint matches" if cand.inliers is not None else ""
    more = f" · {len(cand.images)} photos" if len(cand.images) > 1 else ""
    drawing = f"<img class='evidence' src='{esc(url(cand.evidence))}' alt='keypoint matches'>" if cand.evidence else ""
    return (
        f"<figure class='cand' data-choice='c{index}' data-number='{index + 1}'>"
        f"<img class='gallery' src='{esc(url(cand.images[0]))}' alt='{esc(cand.individual_id)}'>{drawing}"
        f"{_bar(cand.score, threshold, cand.scale)}<figcaption><span class='num'>{index + 1}</span> "
        f"<b>{esc(cand.individual_id)}</b> <span class='sim'>{_score_text(cand.score, cand.scale)}</span>{evidence}"
        f" · {esc(cand.species)}{more}<br><span class='muted file'>{esc(cand.gallery_photos[0])}</span></figcaption>"
        "</figure>"
    )


def call_text(query: QueryView) -> str:
    """The recommendation in words, with the score it rests on and the threshold: `known: X (P(same) 0.94 ≥
    0.40)` or `probably new (best P(same) 0.31 < 0.40)`."""
    label = "P(same)" if query.scale == "probability" else "similarity"
    score = f"{query.call_score:.2f}" if math.isfinite(query.call_score) else "n/a"
    limit = f"{query.threshold:.2f}" if math.isfinite(query.threshold) else "n/a"
    if query.call == NEW_INDIVIDUAL:
        return f"probably new (best {label} {score} < {limit})"
    return f"known: {query.call} ({label} {score} ≥ {limit})"


def _call(query: QueryView) -> str:
    kind = "new" if query.call == NEW_INDIVIDUAL else "known"
    return (
        f"<div class='call {kind}' data-call='{esc(query.call)}' data-score='{query.call_score:.6g}' "
        f"data-threshold='{query.threshold:.6g}' data-scale='{esc(query.scale)}'>"
        f"<span class='muted'>recommendation</span> <b>{esc(call_text(query))}</b> "
        "<button class='accept'>accept (a)</button>"
        "<span class='muted'> · the candidates below are the evidence, best first</span></div>"
    )


def render_section(index: int, query: QueryView) -> str:
    """One query's (or encounter's) section: its photos and crops, the call, the candidates, the decision controls."""
    filters = f" <span class='filters'>candidates: {esc(query.filters)}</span>" if query.filters else ""
    head = f"<h2>{esc(query.photo)} <span class='muted'>{esc(query.species)}</span>{filters}</h2>"
    attrs = f"class='card query' data-index='{index}' data-key='{esc(query.key)}'"
    if query.error:
        return f"<section {attrs}>{head}<p class='newbox'>{esc(query.error)}</p></section>"
    photos = "".join(
        f"<figure class='photo'><img src='{esc(url(m.image))}' alt='photo'><figcaption>{esc(m.photo)}"
        + (f" · <a href='{esc(url(m.original))}' target='_blank'>original</a>" if m.original else "")
        + f"</figcaption></figure><figure class='crop'><img src='{esc(url(m.crop))}' alt='crop'>"
        "<figcaption>query crop</figcaption></figure>"
        for m in query.members
    )
    cards = "".join(_card(i, c, query.threshold) for i, c in enumerate(query.candidates))
    name = f"q{index}"
    options = "".join(
        f"<label><input type='radio' name='{name}' value='c{i}'> {i + 1}: {esc(c.individual_id)}</label>"
        for i, c in enumerate(query.candidates)
    )
    return (
        f"<section {attrs}>{head}<div class='row'>{photos}</div>{_call(query)}<div class='cands'>{cards}</div>"
        f"<div class='decision'>{options}"
        f"<label><input type='radio' name='{name}' value='new'> new individual:</label>"
        "<input type='text' placeholder='name / id' aria-label='new individual id'>"
        f"<label><input type='radio' name='{name}' value='skip' checked> undecided</label>"
        "<button class='compare-open'>compare (c)</button></div></section>"
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _query_data(query: QueryView) -> dict:
    """What the page's script needs of a section; every file reference a URL, encoded once (`url`)."""
    return {
        "key": query.key, "photos": query.photos, "error": bool(query.error), "call": query.call,
        "threshold": _finite(query.threshold), "scale": query.scale,
        "members": [{"crop": url(m.crop), "original": url(m.original), "photo": m.photo} for m in query.members],
        "candidates": [
            {"id": c.individual_id, "rank": c.rank, "score": _finite(c.score), "images": [url(i) for i in c.images],
             "originals": [url(o) for o in c.originals], "gallery_photos": c.gallery_photos,
             "evidence": url(c.evidence), "inliers": c.inliers}
            for c in query.candidates
        ],
    }  # fmt: skip


def _script() -> str:
    return (resources.files("whale_reid.review") / "assets" / "review.js").read_text(encoding="utf-8")


def _header(counter: str, note: str, links: str) -> str:
    return (
        f"<header><h1>{esc(TITLE)}</h1><span id='position'></span><span id='counter'>{counter}</span>"
        f"<span class='muted'>{esc(note)}</span>{links}<span class='hint'>{esc(HINT)}</span>"
        "<button id='export'>Export decisions.csv</button></header>" + HELP
    )


COMPARE = (
    "<div id='compare' hidden><p id='cmp-title'></p>"
    "<div class='pane'><div class='zoom'><img id='cmp-query' alt='query crop'></div><p id='cmp-query-links'></p></div>"
    "<div class='pane'><div class='zoom'><img id='cmp-cand' alt='candidate'></div>"
    "<p id='cmp-cand-links'></p><div id='cmp-thumbs'></div></div>"
    "<p class='muted'>←/→ or Shift+1–5: another candidate (decides nothing) · 1–5, a, n: decide · m: keypoint matches"
    " · p: candidate's next photo · q: next query photo · wheel/drag: zoom/pan both · 0: reset · Esc: close</p></div>"
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
        f"<tr data-page='{n}'><td><a href='{esc(url(p['href']))}'>page {n + 1}</a></td><td>{esc(p['first'])} … "
        f"{esc(p['last'])}</td><td class='progress'></td></tr>"
        for n, p in enumerate(pages)
    )
    data = {"run": run_id, "index": True, "total": decidable, "pages": pages}
    body = _header("", note, "") + f"<main><section class='card'><table>{rows}</table></section></main>"
    body += f"<script id='review-data' type='application/json'>{json_for_script(data)}</script>"
    atomic_write_text(out / INDEX, page(TITLE, body, _script()))
    return written
