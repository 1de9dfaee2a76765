"""Stage `predict`: the selected ensemble's test answers → `outputs/submission.csv`, the saved gallery
(`models/gallery/`, what `whale-reid identify` queries) and `metrics/final.json`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines._common import load_params, params_digest, run_stage
from pipelines._tracking import TrackingConfig, configure_tracking, standard_tags
from whale_core import Config, atomic_write_csv, atomic_write_json, read_json, read_table
from whale_reid.ensemble import ensemble_embeddings
from whale_reid.submission import make_submission
from whale_reid.verification import MatchConfig, load_feature_sets, save_gallery_features, shortlist_evidence
from whale_retrieval import GalleryIndex, KnnConfig, knn_search, known_new_groups, map_at_5, map_at_5_by_group
from whale_retrieval.answers import AnswerRule

log = logging.getLogger("pipelines.predict")
GALLERY_DIR = Path("models/gallery")


@dataclass(frozen=True)
class PredictConfig(Config):
    """params.yaml `predict`: how the test photos are searched against the gallery, and the MLflow model.

    `registered_model`: the name the ensemble is registered under in MLflow (a pyfunc over `whale_reid.identify`,
    see `whale_reid.mlflow_model`); null = no model is logged.
    """

    SECTION = "predict"
    knn: KnnConfig = KnnConfig()
    registered_model: str | None = "whale-reid-ensemble"


def read_csv(path: str) -> pd.DataFrame:
    return read_table(path)


def test_scores(raw_dir: Path, submission: pd.DataFrame) -> dict[str, float]:
    """Test MAP@5 against `test_labels.csv` when the data has the truth (the demo does)."""
    labels_path = raw_dir / "test_labels.csv"
    if not labels_path.is_file() or submission.empty:
        return {}
    truth = read_csv(str(labels_path)).set_index("image")["individual_id"].loc[submission["image"]].tolist()
    answers = submission["predictions"].str.split().tolist()
    groups = map_at_5_by_group(answers, truth, known_new_groups(truth))
    return {"test_map5": map_at_5(answers, truth), **{f"test_map5_{g}": v for g, v in groups.items()}}


def main() -> None:
    params = load_params()
    cfg = PredictConfig.from_dict(params.get("predict"))
    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))  # an outage fails before the work
    selection = read_json("outputs/selection.json", "written by the select stage")
    members = pd.DataFrame(selection["members"])
    post_json = read_json("outputs/postprocess.json", "written by the tune stage")
    rule = AnswerRule.from_dict(post_json, "outputs/postprocess.json")
    match = MatchConfig.from_dict(params.get("match"))
    train, test = read_csv("data/prepared/train.csv"), read_csv("data/prepared/test.csv")

    gallery_emb = ensemble_embeddings(members, "train", train["image"])
    gallery = GalleryIndex.build(
        gallery_emb, train["image"], train["individual_id"], train["species"],
        settings={**rule.to_dict(), "knn": cfg.knn.to_dict(), "members": selection["members"],
                  "match": match.to_dict()},
    )  # fmt: skip
    answers: list[list[str]] = []
    if len(test):
        query_emb = ensemble_embeddings(members, "test", test["image"])
        k = min(rule.post.k_neighbors, len(train))
        labels = None if rule.calibrator else gallery.labels  # fusion re-ranks the whole shortlist: search it exactly
        sims, idx = knn_search(query_emb, gallery_emb, k, config=cfg.knn, gallery_labels=labels)
        evidence = None
        if rule.calibrator:
            evidence = shortlist_evidence(
                load_feature_sets("test", match.regions), load_feature_sets("train", match.regions),
                test["image"].tolist(), gallery.image_ids, idx, rule.shortlist_columns(k), match,
            )  # fmt: skip
        answers = rule.apply(sims, idx, gallery.labels, gallery.species, evidence).ids
    submission = make_submission(test["image"], answers)

    final = test_scores(Path(params["data"]["raw_dir"]), submission) | {"oof_map5": post_json["oof_map5"]}
    final = {k: round(float(v), 4) for k, v in final.items()}  # the DVC metrics: scores only, rounded
    gallery.save(GALLERY_DIR)
    if rule.calibrator:
        save_gallery_features(GALLERY_DIR, match.regions)
    atomic_write_csv("outputs/submission.csv", submission)
    atomic_write_json("metrics/final.json", final)
    import mlflow

    digest = params_digest(selection, post_json)
    with mlflow.start_run(run_name="ensemble", tags=standard_tags("predict", digest)):
        mlflow.log_params({"members": ", ".join(f"{m}/fold{f}" for m, f in zip(members["model"], members["fold"]))})
        mlflow.log_params({"threshold": rule.post.threshold, "k_neighbors": rule.post.k_neighbors, "scale": rule.scale,
                           "ensemble_members": len(members), "embedding_dim": int(gallery_emb.shape[1])})  # fmt: skip
        mlflow.log_metrics({k: float(v) for k, v in final.items()})
        mlflow.log_dict(selection, "selection.json")
        for path in ("outputs/submission.csv", "outputs/oof_predictions.csv", "outputs/postprocess.json"):
            mlflow.log_artifact(path, artifact_path="outputs")
        if cfg.registered_model:  # a pyfunc over whale_reid.identify: `mlflow models predict` on photo paths
            from whale_reid.mlflow_model import log_ensemble_model

            log_ensemble_model(Path("."), cfg.registered_model)
    log.info("submission: %d test photos; %s", len(submission), ", ".join(f"{k} {v:.4f}" for k, v in final.items()))


if __name__ == "__main__":
    run_stage(main)()
