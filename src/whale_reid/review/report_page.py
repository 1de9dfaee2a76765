"""The pipeline's report page (`reports/index.html`): CV per fold, the selection, the threshold curve,
the detector's mAP, and a sample of out-of-fold queries beside their top-5 (correct answer marked)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from whale_core import NEW_INDIVIDUAL
from whale_reid.common.html import esc, page


@dataclass(frozen=True)
class OofExample:
    """One out-of-fold query: its crop, the truth, and the five answers with their crops (None = no image)."""

    image: str
    truth: str
    crop_uri: str
    answers: list[tuple[str, str | None]] = field(default_factory=list)


def _short(value: Any) -> str:
    """A table cell: floats to 4 significant digits, a saved calibrator as its kind and inputs, nothing as "—"
    (never a raw `None` or `{}`), other lists and mappings as their items."""
    if value is None or (isinstance(value, (dict, list, tuple)) and not value):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and value and all(isinstance(v, float) for v in value.values()):
        return ", ".join(f"{k} {v:.3g}" for k, v in value.items())
    if isinstance(value, dict) and "kind" in value and "features" in value:
        weights = ", ".join(f"{f} {c:.3g}" for f, c in zip(value["features"], value.get("coef") or []))
        return f"{value['kind']} on {', '.join(value['features'])}" + (f" (weights {weights})" if weights else "")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_short(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_short(v) for v in value)
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


PALETTE = ("#3ecf8e", "#4c9be8", "#f5a623", "#e8604c", "#b57edc", "#9fb3c8")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k)."""
    span = max(hi - lo, 1e-9)
    raw = span / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda st: abs(span / st - (n - 1)))
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _line_chart(series: dict[str, tuple[Any, Any]], x_label: str, y_label: str, marker_x: float | None = None) -> str:
    """An inline SVG line chart with axis ticks and a y-range zoomed onto the data (no plotting library).

    Args:
        series: label → (xs, ys), one coloured line (with points) each; the legend names them when several.
        x_label, y_label: the axis titles.
        marker_x: a dashed vertical line (e.g. the chosen threshold).
    """
    points = [(float(x), float(y)) for xs, ys in series.values() for x, y in zip(xs, ys) if y == y]
    if not points:
        return "<p class='muted'>nothing measured</p>"
    width, height, left, right, top, bottom = 560, 240, 52, 16, 14, 40
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    margin = max((y1 - y0) * 0.1, 0.005)  # zoomed: the differences that matter, not a line glued to the top
    y0, y1 = max(y0 - margin, 0.0), min(y1 + margin, 1.0) if y1 <= 1.0 else y1 + margin
    x1 = x1 if x1 > x0 else x0 + 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / max(y1 - y0, 1e-9) * (height - top - bottom)

    parts = [f"<rect width='{width}' height='{height}' fill='#0b1522' rx='6'/>"]
    for t in _ticks(y0, y1):
        if y0 - 1e-9 <= t <= y1 + 1e-9:
            parts.append(f"<line x1='{left}' x2='{width - right}' y1='{sy(t):.1f}' y2='{sy(t):.1f}' stroke='#1f3347'/>"
                         f"<text x='{left - 6}' y='{sy(t) + 4:.1f}' fill='#9fb3c8' font-size='10' "
                         f"text-anchor='end'>{t:.3g}</text>")  # fmt: skip
    for t in _ticks(x0, x1):
        if x0 - 1e-9 <= t <= x1 + 1e-9:
            parts.append(f"<line x1='{sx(t):.1f}' x2='{sx(t):.1f}' y1='{height - bottom}' y2='{height - bottom + 4}' "
                         f"stroke='#9fb3c8'/><text x='{sx(t):.1f}' y='{height - bottom + 15}' fill='#9fb3c8' "
                         f"font-size='10' text-anchor='middle'>{t:.3g}</text>")  # fmt: skip
    if marker_x is not None and x0 <= marker_x <= x1:
        bx = sx(marker_x)
        parts.append(f"<line x1='{bx:.1f}' x2='{bx:.1f}' y1='{top}' y2='{height - bottom}' stroke='#f5a623' "
                     f"stroke-dasharray='4'/>")  # fmt: skip
    for n, (label, (xs, ys)) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        pts = [(sx(float(x)), sy(float(y))) for x, y in zip(xs, ys) if y == y]
        parts.append(
            f"<polyline fill='none' stroke='{colour}' stroke-width='2' "
            f"points='{' '.join(f'{x:.1f},{y:.1f}' for x, y in pts)}'><title>{esc(label)}</title></polyline>"
        )
        parts += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{colour}'/>" for x, y in pts]
        if len(series) > 1:
            parts.append(f"<text x='{left + 8}' y='{top + 12 + 13 * n}' fill='{colour}' font-size='11' "
                         f"text-anchor='start'>{esc(label)}</text>")  # fmt: skip
    parts.append(f"<text x='{(left + width - right) / 2:.0f}' y='{height - 6}' fill='#9fb3c8' font-size='11' "
                 f"text-anchor='middle'>{esc(x_label)}</text><text x='12' y='{(top + height - bottom) / 2:.0f}' "
                 f"fill='#9fb3c8' font-size='11' text-anchor='middle' transform='rotate(-90 12 "
                 f"{(top + height - bottom) / 2:.0f})'>{esc(y_label)}</text>")  # fmt: skip
    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='{esc(y_label)} vs {esc(x_label)}'>"
        + "".join(parts)
        + "</svg>"
    )


def _curve_svg(curve: pd.DataFrame, best_threshold: float | None) -> str:
    """MAP@5 against the threshold, the chosen one marked."""
    if curve.empty:
        return "<p class='muted'>no threshold sweep recorded</p>"
    return _line_chart({"OOF MAP@5": (curve["threshold"], curve["map5"])}, "threshold", "OOF MAP@5", best_threshold)


def _fold_curves_svg(curves: pd.DataFrame) -> str:
    """Validation MAP@5 per validated epoch, one line per fold."""
    if curves.empty:
        return ""
    series = {f"fold {k}": (g["epoch"], g["val_map5"]) for k, g in curves.sort_values("epoch").groupby("fold")}
    return _line_chart(series, "epoch", "validation MAP@5")


def _link(label: str, url: str | None) -> str:
    return f"<a href='{esc(url)}'>{esc(label)}</a>" if url else esc(label)


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
    fold_curves: dict[str, pd.DataFrame] | None = None,
    run_url: Callable[[str], str | None] | None = None,
    experiment_url: str | None = None,
) -> str:
    """The complete report page. Inputs are the pipeline's own output files, already parsed.

    Args:
        fold_metrics: per model, train_embedder's run record (`cv_map5`, `folds.<k>.cv_map5` and `run_id`,
            `parent_run_id`).
        fold_curves: per model, the validated epochs of every fold (`fold`, `epoch`, `val_map5`).
        run_url: an MLflow run id → its page in the MLflow UI (None: no links).
        experiment_url: the experiment's runs table in the MLflow UI.
    """
    url = run_url or (lambda _run_id: None)
    selected = {f"{m['model']} fold{m['fold']}" for m in selection}
    cv_rows = []
    for model, metrics in sorted(fold_metrics.items()):
        folds = sorted(metrics["folds"].items(), key=lambda kv: int(kv[0]))
        rows = [(f"{model} fold{k}", float(v["cv_map5"])) for k, v in folds]
        links = " · ".join(_link(f"fold{k}", url(str(v.get("run_id", "")))) for k, v in folds)
        cv_rows.append(
            f"<h2>{_link(model, url(str(metrics.get('parent_run_id', ''))))} · mean CV MAP@5 "
            f"{float(metrics['cv_map5']):.4f}</h2>{_bars(rows, selected)}"
            f"{_fold_curves_svg((fold_curves or {}).get(model, pd.DataFrame()))}"
            f"<p class='muted'>MLflow runs: {links}</p>"
        )
    summary = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_short(v))}</td></tr>" for k, v in sorted(final.items()))
    det = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_short(v))}</td></tr>" for k, v in sorted(detector.items()))
    post = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_short(v))}</td></tr>" for k, v in sorted(postprocess.items()))
    mlflow_note = f"<p>{_link('MLflow: compare the models and folds', experiment_url)}</p>" if experiment_url else ""
    body = (
        "<header><h1>whale-reid · pipeline report</h1></header><main>"
        f"<section class='card'><h2>Final</h2><table>{summary}</table>{mlflow_note}</section>"
        f"<section class='card'>{''.join(cv_rows)}</section>"
        f"<section class='card'><h2>new_individual threshold (out-of-fold)</h2>"
        f"{_curve_svg(curve, postprocess.get('threshold'))}<table>{post}</table></section>"
        f"<section class='card'><h2>Detector</h2><table>{det}</table></section>"
        f"<section class='card'><h2>Out-of-fold queries and their top-5</h2>{_examples(examples)}</section></main>"
    )
    return page("whale-reid report", body)
