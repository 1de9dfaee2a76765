"""MLflow set-up shared by the stages: tracking URI, reachability check, experiment, tags, digests, curves.

Tracking URI: `MLFLOW_TRACKING_URI` if set, else params `tracking.uri`, else an embedded SQLite file
`mlflow.db` at the repo root. An unreachable server fails within seconds, before any training, with
the URI in the message — or, when `tracking.local_fallback` is true, the stage goes on with the local
SQLite store and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whale_core import Config, InputError

log = logging.getLogger(__name__)
LOCAL_URI = "sqlite:///mlflow.db"
#: MLflow 3's UI opens an experiment of this kind in its model-training view (runs, metrics, params)
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
#: The runs table's saved view with the scores as columns: an experiment tag `mlflow.sharedViewState.<key>` (MLflow's
#: own saved views), opened by `?viewStateShareKey=<key>` in the UI's address.
SCORES_VIEW_KEY, SHARED_VIEW_TAG = "scores", "mlflow.sharedViewState."
SCORE_COLUMNS = ("cv_map5", "cv_map5_std", "oof_map5", "test_map5", "map50")  # folds' cv_map5_fold<k> after cv_map5
METRIC_DECIMALS = 4  #: the decimals of a metric in MLflow, as in the DVC metrics files


@dataclass(frozen=True)
class TrackingConfig(Config):
    """params.yaml `tracking`: where runs go."""

    SECTION = "tracking"
    RANGES = {"connect_timeout_s": "(0, 600]"}
    experiment: str = "whale-reid"
    uri: str | None = None
    local_fallback: bool = False
    connect_timeout_s: float = 5.0


def _reachable(uri: str, timeout_s: float) -> bool:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return True
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "localhost", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def configure_tracking(cfg: TrackingConfig) -> str:
    """Point MLflow at the configured store and experiment; return the tracking URI in use.

    Raises:
        InputError: the tracking server cannot be reached (and `local_fallback` is off).
    """
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.uri or LOCAL_URI
    if not _reachable(uri, cfg.connect_timeout_s):
        if not cfg.local_fallback:
            raise InputError(
                f"MLflow tracking server {uri} is unreachable (set tracking.local_fallback: true to log to {LOCAL_URI})"
            )
        log.warning(
            "MLflow tracking server %s is unreachable; logging to the local store %s (%s) instead",
            uri,
            LOCAL_URI,
            Path(LOCAL_URI.removeprefix("sqlite:///")).resolve(),
        )
        uri = LOCAL_URI
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment(cfg.experiment)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # the UI's model-training view, not GenAI's
        mlflow.set_experiment_tag(EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    share_scores_view(experiment.experiment_id)
    return uri


def scores_view(metric_names: set[str]) -> dict[str, Any]:
    """The runs table's state of the saved view: the scores that exist as columns, folds after their mean."""
    folds = sorted((m for m in metric_names if re.fullmatch(r"cv_map5_fold\d+", m)), key=lambda m: int(m[12:]))
    names = [c for c in SCORE_COLUMNS[:2] if c in metric_names] + folds
    names += [c for c in SCORE_COLUMNS[2:] if c in metric_names]
    return {"selectedColumns": [f"metrics.`{name}`" for name in names]}


def share_scores_view(experiment_id: str) -> None:
    """Save (or update) the experiment's `scores` view: the runs table with the metrics the runs logged so far."""
    from mlflow import MlflowClient

    client = MlflowClient()
    names = {key for run in client.search_runs([experiment_id], max_results=1000) for key in run.data.metrics}
    state = json.dumps(scores_view(names), sort_keys=True)
    tag = SHARED_VIEW_TAG + SCORES_VIEW_KEY
    saved = client.get_experiment(experiment_id).tags.get(tag)
    if saved is not None and json.loads(saved).get("state") == state:
        return
    now = int(time.time() * 1000)
    created = json.loads(saved).get("createdAt", now) if saved else now
    view = {"name": "scores: CV, OOF and test MAP@5", "createdAt": created, "updatedAt": now, "state": state}
    client.set_experiment_tag(experiment_id, tag, json.dumps(view))


def params_digest(*sections: Any) -> str:
    """A short, stable hash of params sections (tags MLflow runs so stale runs can be filtered out)."""
    blob = json.dumps(sections, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def git_sha() -> str:
    """The commit the code runs at, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def standard_tags(stage: str, digest: str, **extra: Any) -> dict[str, str]:
    """Tags every run carries: stage, git sha, params digest (what `select` filters on) and extras."""
    return {"stage": stage, "git_sha": git_sha(), "params_digest": digest, **{k: str(v) for k, v in extra.items()}}


def metric_value(value: float) -> float:
    """A metric value as MLflow keeps it: 4 decimals, as the metrics files hold it (0.34351234 → 0.3435).

    A value so small that 4 decimals would leave it fewer than 4 significant digits (a learning rate:
    0.000123456 → 0.0001235) keeps 4, so its curve is not flattened to 0; NaN and infinities stay as they are.
    """
    value = float(value)
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, max(METRIC_DECIMALS, METRIC_DECIMALS - 1 - math.floor(math.log10(abs(value)))))


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log metrics to the active MLflow run, rounded by `metric_value`: every metric the project logs goes here.

    MLflow is for reading; a decision (which folds join the ensemble) uses the exact value its run record keeps.
    """
    import mlflow

    mlflow.log_metrics({key: metric_value(value) for key, value in metrics.items()}, step=step)


def log_table(frame: Any, artifact_file: str) -> None:
    """A DataFrame as a CSV artifact of the active run (nothing written to the repo)."""
    import mlflow

    mlflow.log_text(frame.to_csv(index=False), artifact_file)


def log_curves(frame: Any, x: str, ys: list[str], artifact_stem: str, title: str, group: str | None = None) -> None:
    """Curves as `<artifact_stem>.csv` + `<artifact_stem>.png` artifacts of the active run (none if empty)."""
    import mlflow

    if frame.empty:
        return

    from whale_reid.common.plots import curve_figure

    log_table(frame, f"{artifact_stem}.csv")
    mlflow.log_figure(curve_figure(frame, x, ys, title, group=group), f"{artifact_stem}.png")
