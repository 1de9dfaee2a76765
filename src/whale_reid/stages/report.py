"""What the pipeline's report page shows, gathered from the stages' outputs: the `report` stage's work.

Missing files leave their part of the page out; the OOF examples are a deterministic sample of queries, each
answer shown by the OOF gallery photo it rests on (with verification on, beside the query, matches drawn).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from whale_core import NEW_INDIVIDUAL, ImageLoadError, InputError, load_rgb, read_table
from whale_reid.answers.verification import MatchConfig, evidence_picture
from whale_reid.common.html import image_data_uri
from whale_reid.common.tracking import SCORES_VIEW_KEY
from whale_reid.review.report_page import OofExample, render_report

N_EXAMPLES = 12
DEFAULT_UI_URL = "http://127.0.0.1:5000"  #: where `make mlflow` serves the UI


@dataclass(frozen=True)
class ReportPaths:
    """What the report reads: the `outputs/` and `metrics/` folders, the run records and the crops."""

    outputs: Path
    metrics: Path
    runs: Path
    crops: Path


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()  # numbers only: curves of metrics


def _crop(image: str, crops_dir: Path, region: str) -> Path:
    return crops_dir / region / "train" / Path(image).with_suffix(".jpg")


def _crop_uri(image: str, crops_dir: Path, region: str) -> str | None:
    try:
        return image_data_uri(load_rgb(_crop(image, crops_dir, region)), max_side=200)
    except ImageLoadError:
        return None


def _answer_uri(query: str, shown: str, crops_dir: Path, region: str, match: MatchConfig) -> str | None:
    """The gallery crop an answer rests on; with verification on, beside the query with the matches drawn."""
    if not match.enabled:
        return _crop_uri(shown, crops_dir, region)
    try:
        picture, _ = evidence_picture(_crop(query, crops_dir, region), _crop(shown, crops_dir, region), match)
    except InputError:
        return None
    return image_data_uri(Image.fromarray(picture), max_side=360)


def oof_examples(oof: pd.DataFrame, crops_dir: Path, region: str, match: MatchConfig) -> list[OofExample]:
    """A deterministic sample of OOF queries (half correct at rank 1 where possible), each answer shown by the
    OOF gallery photo it rests on (never the query itself)."""
    oof = oof.sort_values("image").reset_index(drop=True)
    hits = oof[oof["predictions"].str.split().str[0] == oof["truth"]].head(N_EXAMPLES // 2)
    misses = oof[~oof.index.isin(hits.index)].head(N_EXAMPLES - len(hits))
    examples = []
    for row in pd.concat([hits, misses]).itertuples():
        shown = row.evidence_images.split()
        answers = [
            (a, None if a == NEW_INDIVIDUAL or g == "-" else _answer_uri(row.image, g, crops_dir, region, match))
            for a, g in zip(row.predictions.split(), shown)
        ]
        examples.append(OofExample(row.image, row.truth, _crop_uri(row.image, crops_dir, region) or "", answers))
    return examples


def mlflow_links(tracking_uri: str, experiment_name: str) -> tuple[str | None, Callable[[str], str | None]]:
    """The experiment's model-training view and a run-page maker, in the MLflow UI `make mlflow` serves
    (`MLFLOW_UI_URL` overrides the address; a tracking server's own address is used when there is one)."""
    import mlflow

    base = os.environ.get("MLFLOW_UI_URL") or (
        tracking_uri if tracking_uri.startswith(("http://", "https://")) else DEFAULT_UI_URL
    )
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None, lambda _run_id: None
    root = f"{base.rstrip('/')}/#/experiments/{experiment.experiment_id}"
    runs = f"{root}/runs?workflowType=machine_learning&viewStateShareKey={SCORES_VIEW_KEY}"  # the scores as columns
    return runs, lambda run_id: f"{root}/runs/{run_id}" if run_id else None


def build_report(paths: ReportPaths, models: list[str], region: str, match: MatchConfig, tracking_uri: str,
                 experiment: str) -> str:  # fmt: skip
    """The report page's HTML from the stages' outputs (MLflow links point at `experiment`'s runs)."""
    experiment_url, run_url = mlflow_links(tracking_uri, experiment)
    return render_report(
        fold_metrics={m: _json(paths.runs / m / "runs.json") for m in models},
        selection=_json(paths.outputs / "selection.json").get("members", []),
        postprocess=_json(paths.outputs / "postprocess.json"),
        curve=pd.read_csv(paths.outputs / "threshold_curve.csv"),
        detector=_json(paths.metrics / "detector.json"),
        final=_json(paths.metrics / "final.json"),
        examples=oof_examples(read_table(paths.outputs / "oof_predictions.csv"), paths.crops, region, match),
        fold_curves={m: _csv(paths.metrics / "embedder" / f"{m}_curves.csv") for m in models},
        run_url=run_url,
        experiment_url=experiment_url,
    )
