"""Which (model, fold) checkpoints join the ensemble: the `select` stage's rule and the fold runs it reads.

The run records (`<runs>/<model>/runs.json`, written by train_embedder) name the current runs; MLflow is
asked for exactly those runs (their params digest and score), so runs of stale params never leak in.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from whale_core import Config, InputError
from whale_reid.common.tracking import METRIC_DECIMALS

log = logging.getLogger(__name__)

SELECTION_COLUMNS = ["model", "fold", "run_id", "cv_map5", "checkpoint"]


@dataclass(frozen=True)
class SelectConfig(Config):
    """params.yaml `select`.

    Attributes:
        rule: `top_n` keeps each model's `top_n` best folds; `delta` keeps every fold whose CV MAP@5 is
            within `delta` of its model's best fold; `all` keeps every fold.
        allow_metrics_fallback: when MLflow does not know the runs `models/embedder/<model>/runs.json` lists (a fresh
            clone that pulled DVC outputs, say), select from those records instead of failing.
    """

    SECTION = "select"
    RANGES = {"top_n": ">= 1", "delta": "[0, 1]"}  # delta: of MAP@5, itself in [0, 1]
    rule: Literal["top_n", "delta", "all"] = "top_n"
    top_n: int = 3
    delta: float = 0.02
    allow_metrics_fallback: bool = False


def select_members(folds: pd.DataFrame, cfg: SelectConfig) -> pd.DataFrame:
    """Apply the rule per model to a table of fold results.

    Args:
        folds: one row per trained fold with columns model, fold, run_id, cv_map5, checkpoint.
        cfg: the rule.

    Returns:
        The kept rows, sorted by model then CV MAP@5 descending then fold (deterministic).
    """
    ordered = folds.sort_values(["model", "cv_map5", "fold"], ascending=[True, False, True], kind="stable")
    if cfg.rule == "all":
        kept = ordered
    elif cfg.rule == "top_n":
        kept = ordered.groupby("model", sort=True).head(cfg.top_n)
    else:
        best = ordered.groupby("model")["cv_map5"].transform("max")
        kept = ordered[ordered["cv_map5"] >= best - cfg.delta - 1e-12]
    return kept.reset_index(drop=True)[SELECTION_COLUMNS]


def folds_from_records(runs_dir: Path, models: list[str]) -> pd.DataFrame:
    """One row per trained fold as train_embedder's run records (`<runs_dir>/<model>/runs.json`) give it."""
    rows = []
    for model in models:
        path = runs_dir / model / "runs.json"
        if not path.is_file():
            raise InputError(f"{path}: missing — run the train_embedder stage for model {model!r} first")
        record = json.loads(path.read_text())
        for fold, entry in sorted(record["folds"].items(), key=lambda kv: int(kv[0])):
            checkpoint = runs_dir / model / f"fold{fold}" / "best.pt"
            rows.append({"model": model, "fold": int(fold), "run_id": entry["run_id"],
                         "cv_map5": float(entry["cv_map5"]), "checkpoint": str(checkpoint),
                         "params_digest": record.get("params_digest")})  # fmt: skip
    return pd.DataFrame(rows)


def folds_from_mlflow(expected: pd.DataFrame, allow_fallback: bool) -> tuple[pd.DataFrame, str]:
    """The same folds once MLflow confirms them, and the source's name; falls back to the records if allowed.

    MLflow keeps `cv_map5` rounded (`tracking.metric_value`), so the rule ranks the folds by the records' exact
    score, which MLflow must agree with to its 4 decimals (two folds 0.61231 and 0.61234 are not a tie).

    Raises:
        InputError: MLflow does not know a run (without the fallback), or knows it with another params digest
            or another score.
    """
    import mlflow

    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.stage = 'train_embedder'",
                              output_format="pandas")  # fmt: skip
    known = runs.set_index("run_id") if len(runs) else pd.DataFrame()
    missing = [rid for rid in expected["run_id"] if rid not in known.index]
    if missing:
        message = (
            f"MLflow ({mlflow.get_tracking_uri()}) does not know {len(missing)} fold run(s) "
            f"listed in the run records (runs.json), e.g. {missing[0]}"
        )
        if not allow_fallback:
            raise InputError(message + " (set select.allow_metrics_fallback: true to select from the run records)")
        log.warning("%s; selecting from the run records instead", message)
        return expected, "metrics_files"
    table = expected.copy()
    for rid, exact in zip(table["run_id"], table["cv_map5"]):
        logged = float(known.loc[rid, "metrics.cv_map5"])
        if not math.isclose(logged, exact, rel_tol=0, abs_tol=0.5 * 10**-METRIC_DECIMALS + 1e-12):
            raise InputError(f"MLflow run {rid} has cv_map5 {logged}, the run records (runs.json) {exact}")
    digests = [known.loc[rid].get("tags.params_digest") for rid in table["run_id"]]
    stale = [rid for rid, d, want in zip(table["run_id"], digests, table["params_digest"]) if want and d != want]
    if stale:
        raise InputError(f"MLflow run {stale[0]} was logged with other params than the run records")
    return table, "mlflow"


def select_from_runs(runs_dir: Path, models: list[str], cfg: SelectConfig) -> dict:
    """The selection `outputs/selection.json` holds: the rule, where the scores came from, the members."""
    folds, source = folds_from_mlflow(folds_from_records(runs_dir, models), cfg.allow_metrics_fallback)
    members = select_members(folds, cfg)
    return {"rule": cfg.to_dict(), "source": source, "members": members.to_dict(orient="records")}
