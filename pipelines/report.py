"""Stage `report`: `reports/index.html` — CV per fold, selection, threshold curve, detector mAP, and a
sample of out-of-fold queries with their top-5 (correct answer marked). Logged to MLflow as an artifact."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from PIL import Image

from pipelines._common import load_params, run_stage
from pipelines._tracking import TrackingConfig, configure_tracking
from whale_core import ImageLoadError, InputError, atomic_write_text, load_rgb
from whale_reid.html import image_data_uri
from whale_reid.report import NEW_INDIVIDUAL, OofExample, render_report
from whale_reid.verification import MatchConfig, evidence_picture

log = logging.getLogger("pipelines.report")
N_EXAMPLES = 12


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


def main() -> None:
    params = load_params()
    models = list(params["embedder"]["models"])
    fold_metrics = {m: _json(f"metrics/embedder/{m}.json") for m in models}
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
    )
    out = atomic_write_text("reports/index.html", html)
    import mlflow

    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))
    with mlflow.start_run(run_name="report", tags={"stage": "report"}):
        mlflow.log_artifact(str(out))
    log.info("wrote %s", out)


if __name__ == "__main__":
    run_stage(main)()
