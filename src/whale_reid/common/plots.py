"""Small matplotlib figures of the training curves, for MLflow artifacts (headless: the Agg backend)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def curve_figure(frame: pd.DataFrame, x: str, ys: list[str], title: str, group: str | None = None) -> Any:
    """One panel per column of `ys` against `x`, a line per value of `group` (e.g. the CV fold).

    Args:
        frame: the measured points only (a row per validated epoch, say): nothing is interpolated.
        x: the column on the horizontal axis.
        ys: the columns plotted, one panel each; a column missing from `frame` is left out.
        title: the figure's title.
        group: the column whose values become separate, labelled lines; None = one line.

    Returns:
        The `matplotlib.figure.Figure` (for `mlflow.log_figure`); the caller closes it.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    ys = [y for y in ys if y in frame.columns]
    fig = Figure(figsize=(4.2 * max(len(ys), 1), 3.2), layout="constrained")
    axes = fig.subplots(1, max(len(ys), 1), squeeze=False)[0]
    groups = frame.groupby(group, sort=True) if group else [(None, frame)]
    for ax, y in zip(axes, ys):
        for key, part in groups:
            part = part.dropna(subset=[y]).sort_values(x)
            ax.plot(part[x], part[y], marker="o", markersize=3, label=None if key is None else f"{group} {key}")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
        if group:
            ax.legend(fontsize="small")
    fig.suptitle(title)
    return fig
