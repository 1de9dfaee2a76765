"""The pipeline's report page (`reports/index.html`): CV per fold, the selection, the threshold curve,
the detector's mAP, and a sample of out-of-fold queries beside their top-5 (correct answer marked)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from whale_reid.html import esc, page

NEW_INDIVIDUAL = "new_individual"


@dataclass(frozen=True)
class OofExample:
    """One out-of-fold query: its crop, the truth, and the five answers with their crops (None = no image)."""

    image: str
    truth: str
    crop_uri: str
    answers: list[tuple[str, str | None]] = field(default_factory=list)


def _short(value: Any) -> str:
    """A table cell: floats to 4 significant digits, a saved calibrator as its kind and inputs."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and "kind" in value and "features" in value:
        weights = ", ".join(f"{f} {c:.3g}" for f, c in zip(value["features"], value.get("coef") or []))
        return f"{value['kind']} on {', '.join(value['features'])}" + (f" (weights {weights})" if weights else "")
    return str(value)


def _bars(rows: list[tuple[str, float]], selected: set[str]) -> str:
    top = max([v for _, v in rows] + [1e-9])
    cells = []
    for label, value in rows:
        mark = " ✓ selected" if label in selected else ""
        width = max(2, round(300 * value / top))
        cells.append(
            f"<tr><td>{esc(label)}</td><td><span class='bar' style='width:{width}px'></span> {value:.4f}"
            f"<span class='muted'>{mark}</span></td></tr>"
        )
    return "<table>" + "".join(cells) + "</table>"


def _curve_svg(curve: pd.DataFrame, best_threshold: float | None) -> str:
    """A small inline SVG line chart of MAP@5 against the threshold (no plotting library, no font files)."""
    if curve.empty:
        return "<p class='muted'>no threshold sweep recorded</p>"
    width, height, pad = 560, 220, 30
    xs, ys = curve["threshold"].to_numpy(float), curve["map5"].to_numpy(float)
    x0, x1 = float(xs.min()), float(xs.max()) or 1.0
    y1 = max(float(ys.max()), 1e-9)

    def sx(x: float) -> float:
        return pad + (x - x0) / max(x1 - x0, 1e-9) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - y / y1 * (height - 2 * pad)

    points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
    marker = ""
    if best_threshold is not None:
        bx = sx(best_threshold)
        marker = (
            f"<line x1='{bx:.1f}' x2='{bx:.1f}' y1='{pad}' y2='{height - pad}' stroke='#f5a623' stroke-dasharray='4'/>"
        )
    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='MAP@5 vs threshold'>"
        f"<rect width='{width}' height='{height}' fill='#0b1522' rx='6'/>{marker}"
        f"<polyline fill='none' stroke='#3ecf8e' stroke-width='2' points='{points}'/>"
        f"<text x='{pad}' y='{height - 8}' fill='#9fb3c8' font-size='11'>threshold {x0:.2f} … {x1:.2f}</text>"
        f"<text x='{pad}' y='18' fill='#9fb3c8' font-size='11'>OOF MAP@5 (max {y1:.3f})</text></svg>"
    )


def _examples(examples: list[OofExample]) -> str:
    blocks = []
    for ex in examples:
        figures = [
            f"<figure><img src='{ex.crop_uri}' alt='query'><figcaption>{esc(ex.image)}<br>truth "
            f"<b>{esc(ex.truth)}</b></figcaption></figure>"
        ]
        for rank, (answer, uri) in enumerate(ex.answers, start=1):
            css = "correct" if answer == ex.truth else ("newcard" if answer == NEW_INDIVIDUAL else "")
            inner = f"<img src='{uri}' alt='{esc(answer)}'>" if uri else "<div class='newbox'>new_individual</div>"
            figures.append(f"<figure class='{css}'>{inner}<figcaption>#{rank} {esc(answer)}</figcaption></figure>")
        blocks.append("<div class='row' style='margin-bottom:10px'>" + "".join(figures) + "</div>")
    return "".join(blocks)


def render_report(
    fold_metrics: dict[str, dict[str, Any]],
    selection: list[dict[str, Any]],
    postprocess: dict[str, Any],
    curve: pd.DataFrame,
    detector: dict[str, Any],
    final: dict[str, Any],
    examples: list[OofExample],
) -> str:
    """The complete report page. Inputs are the pipeline's own output files, already parsed."""
    selected = {f"{m['model']} fold{m['fold']}" for m in selection}
    cv_rows = []
    for model, metrics in sorted(fold_metrics.items()):
        rows = [(f"{model} fold{k}", float(v["cv_map5"])) for k, v in sorted(metrics["folds"].items())]
        cv_rows.append(f"<h2>{esc(model)} · mean CV MAP@5 {float(metrics['cv_map5']):.4f}</h2>{_bars(rows, selected)}")
    summary = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in sorted(final.items()))
    det = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in sorted(detector.items()))
    post = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_short(v))}</td></tr>" for k, v in sorted(postprocess.items()))
    body = (
        "<header><h1>whale-reid · pipeline report</h1></header><main>"
        f"<section class='card'><h2>Final</h2><table>{summary}</table></section>"
        f"<section class='card'>{''.join(cv_rows)}</section>"
        f"<section class='card'><h2>new_individual threshold (out-of-fold)</h2>"
        f"{_curve_svg(curve, postprocess.get('threshold'))}<table>{post}</table></section>"
        f"<section class='card'><h2>Detector</h2><table>{det}</table></section>"
        f"<section class='card'><h2>Out-of-fold queries and their top-5</h2>{_examples(examples)}</section></main>"
    )
    return page("whale-reid report", body)
