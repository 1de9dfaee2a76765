"""Stage `report`: `reports/index.html` — CV per fold, selection, threshold curve, detector mAP, and a
sample of out-of-fold queries with their top-5 (correct answer marked). Logged to MLflow as an artifact."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from PIL import Image

from pipelines._common import load_params, run_stage
from pipelines._tracking import TrackingConfig, configure_tracking
from whale_core import NEW_INDIVIDUAL, ImageLoadError, InputError, atomic_write_text, load_rgb
from whale_reid.html import image_data_uri
from whale_reid.report import OofExample, render_report
from whale_reid.verification import MatchConfig, evidence_picture

log = logging.getLogger("pipelines.report")
N_EXAMPLES = 12
DEFAULT_UI_URL = "http://127.0.0.1:5000"  #: where `make mlflow` serves the UI


def _json(path: str) -> dict:
    file = Path(path)
    return json.loads(file.read_text()) if file.is_file() else {}


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


def _curves(model: str) -> pd.DataFrame:
    path = Path("metrics/embedder") / f"{model}_curves.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


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
    return f"{root}/runs?workflowType=machine_learning", lambda run_id: f"{root}/runs/{run_id}" if run_id else None


def main() -> None:
    params = load_params()
    models = list(params["embedder"]["models"])
    tracking = TrackingConfig.from_dict(params.get("tracking"))
    uri = configure_tracking(tracking)
    experiment_url, run_url = mlflow_links(uri, tracking.experiment)
    fold_metrics = {m: _json(f"models/embedder/{m}/runs.json") for m in models}
    oof = pd.read_csv("outputs/oof_predictions.csv", dtype=str, keep_default_na=False)
    region = (params["embedder"].get("common") or {}).get("extract_region", "fullbody")
    html = render_report(
        fold_metrics=fold_metrics,
        selection=_json("outputs/selection.json").get("members", []),
        postprocess=_json("outputs/postprocess.json"),
        curve=pd.read_csv("outputs/threshold_curve.csv"),
        detector=_json("metrics/detector.json"),
        final=_json("metrics/final.json"),
        examples=oof_examples(oof, Path("data/crops"), region, MatchConfig.from_dict(params.get("match"))),
        fold_curves={m: _curves(m) for m in models},
        run_url=run_url,
        experiment_url=experiment_url,
    )
    out = atomic_write_text("reports/index.html", html)
    import mlflow

    with mlflow.start_run(run_name="report", tags={"stage": "report"}):
        mlflow.log_artifact(str(out))
    log.info("wrote %s", out)


if __name__ == "__main__":
    run_stage(main)()
