"""Stage `select`: read the fold runs back from MLflow and keep the high-CV folds for the ensemble.

The run records (`models/embedder/<model>/runs.json`, DVC deps of this stage) name the current runs;
MLflow is asked for exactly those runs (and their params digest), so runs of stale params never
leak in. Writes `outputs/selection.json`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from pipelines._common import load_params, run_stage
from pipelines._tracking import TrackingConfig, configure_tracking
from whale_core import InputError, atomic_write_json
from whale_reid.selection import SelectConfig, select_members

log = logging.getLogger("pipelines.select")


def folds_from_metrics(models: list[str]) -> pd.DataFrame:
    """One row per trained fold as train_embedder's run records (`models/embedder/<model>/runs.json`) give it."""
    rows = []
    for model in models:
        path = Path("models/embedder") / model / "runs.json"
        if not path.is_file():
            raise InputError(f"{path}: missing — run the train_embedder stage for model {model!r} first")
        metrics = json.loads(path.read_text())
        for fold, entry in sorted(metrics["folds"].items(), key=lambda kv: int(kv[0])):
            checkpoint = Path("models/embedder") / model / f"fold{fold}" / "best.pt"
            rows.append(
                {
                    "model": model,
                    "fold": int(fold),
                    "run_id": entry["run_id"],
                    "cv_map5": float(entry["cv_map5"]),
                    "checkpoint": str(checkpoint),
                    "params_digest": metrics.get("params_digest"),
                }
            )
    return pd.DataFrame(rows)


def folds_from_mlflow(expected: pd.DataFrame, allow_fallback: bool) -> tuple[pd.DataFrame, str]:
    """The same folds with `cv_map5` as MLflow has it; falls back to the run records if allowed."""
    import mlflow

    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.stage = 'train_embedder'",
        output_format="pandas",
    )
    known = runs.set_index("run_id") if len(runs) else pd.DataFrame()
    missing = [rid for rid in expected["run_id"] if rid not in known.index]
    if missing:
        message = (
            f"MLflow ({mlflow.get_tracking_uri()}) does not know {len(missing)} fold run(s) "
            f"listed in models/embedder/*/runs.json, e.g. {missing[0]}"
        )
        if not allow_fallback:
            raise InputError(message + " (set select.allow_metrics_fallback: true to select from the run records)")
        log.warning("%s; selecting from the run records instead", message)
        return expected, "metrics_files"
    table = expected.copy()
    table["cv_map5"] = [float(known.loc[rid, "metrics.cv_map5"]) for rid in table["run_id"]]
    digests = [known.loc[rid].get("tags.params_digest") for rid in table["run_id"]]
    stale = [rid for rid, d, want in zip(table["run_id"], digests, table["params_digest"]) if want and d != want]
    if stale:
        raise InputError(f"MLflow run {stale[0]} was logged with other params than models/embedder records")
    return table, "mlflow"


def main() -> None:
    params = load_params()
    cfg = SelectConfig.from_dict(params.get("select"))
    models = list(params["embedder"]["models"])
    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))

    folds, source = folds_from_mlflow(folds_from_metrics(models), cfg.allow_metrics_fallback)
    members = select_members(folds, cfg)
    selection = {"rule": cfg.to_dict(), "source": source, "members": members.to_dict(orient="records")}
    atomic_write_json("outputs/selection.json", selection)
    for model, group in members.groupby("model"):
        log.info("%s: kept folds %s (CV MAP@5 %s)", model, group["fold"].tolist(), group["cv_map5"].round(4).tolist())


if __name__ == "__main__":
    run_stage(main)()
