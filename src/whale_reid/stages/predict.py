"""The `predict` stage's work: the selected ensemble's answers for the test photos, the saved gallery, scores.

The gallery (the train photos embedded by the ensemble, with the answer rule's settings) is what
`whale-reid identify` queries; the test photos are searched against it and answered by the rule `tune` saved.
When both tables carry a `side`, a test photo of a known side is searched on the gallery photos of that side
or of unknown side only (`whale_reid.answers.ensemble.same_side`), as `tune` searched the OOF folds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import NEW_INDIVIDUAL, Config, atomic_write_csv, read_json, read_table
from whale_reid.answers.compose import AnswerContext, Queries, compose_answers
from whale_reid.answers.ensemble import ensemble_embeddings, member_checkpoints, read_selection, same_side
from whale_reid.answers.head_scores import load_head
from whale_reid.answers.region_fusion import fuse_query_regions
from whale_reid.answers.verification import FEATURES_SHA256, MatchConfig, load_feature_sets, save_gallery_features
from whale_reid.common.tracking import log_metrics, params_digest, standard_tags
from whale_reid.dataset.submission import make_submission
from whale_reid.identify.model_bundle import log_ensemble_model, model_description
from whale_retrieval import GalleryIndex, KnnConfig, known_new_groups, map_at_5, map_at_5_by_group
from whale_retrieval.answers import AnswerRule, Answers


@dataclass(frozen=True)
class PredictOutputs:
    """Where the stage's answers go: `submission.csv`, `test_answers.csv` and the gallery folder."""

    submission: Path
    answers: Path
    gallery: Path


@dataclass(frozen=True)
class PredictConfig(Config):
    """params.yaml `predict`: how the test photos are searched against the gallery, and the MLflow model.

    `registered_model`: the name the ensemble is registered under in MLflow (a pyfunc over
    `whale_reid.identify.queries`, see `whale_reid.identify.mlflow_model`); null = no model is logged.
    """

    SECTION = "predict"
    knn: KnnConfig = KnnConfig()
    registered_model: str | None = "whale-reid-ensemble"


@dataclass(frozen=True)
class PredictPaths:
    """What `predict` reads: tune's and select's outputs, the prepared tables, embeddings, features, the raw data."""

    selection: Path
    postprocess: Path
    prepared: Path
    embeddings: Path
    features: Path
    raw_dir: Path


@dataclass(frozen=True)
class Prediction:
    """The submission, the gallery to save, the scores (`final`, rounded), what they came from, and each test
    photo's confidence (`answer_confidence`)."""

    submission: pd.DataFrame
    gallery: GalleryIndex
    final: dict[str, float]
    selection: dict
    postprocess: dict
    rule: AnswerRule
    confidence: pd.DataFrame


def test_scores(raw_dir: Path, submission: pd.DataFrame) -> dict[str, float]:
    """Test MAP@5 against `<raw_dir>/test_labels.csv` when the data has the truth (the demo does), and the share
    of test photos whose truth is `new_individual` (`test_unseen_share`, beside the answered `test_new_share`)."""
    labels_path = raw_dir / "test_labels.csv"
    if not labels_path.is_file() or submission.empty:
        return {}
    truth = read_table(labels_path).set_index("image")["individual_id"].loc[submission["image"]].tolist()
    answers = submission["predictions"].str.split().tolist()
    groups = map_at_5_by_group(answers, truth, known_new_groups(truth))
    return {"test_map5": map_at_5(answers, truth), **{f"test_map5_{g}": v for g, v in groups.items()},
            "test_unseen_share": float(np.mean([t == NEW_INDIVIDUAL for t in truth]))}  # fmt: skip


def predict_test(cfg: PredictConfig, match: MatchConfig, paths: PredictPaths) -> Prediction:
    """Build the gallery of the train photos and answer every test photo with the tuned rule.

    Every member's checkpoint is verified first, whether or not the rule blends its head: the gallery is saved
    for those members and the registered model bundles them (`whale_reid.answers.ensemble.verified_checkpoint`).
    """
    selection = read_selection(paths.selection)
    members = pd.DataFrame(selection["members"])
    checkpoints = member_checkpoints(members)
    post_json = read_json(paths.postprocess, "written by the tune stage")
    rule = AnswerRule.from_dict(post_json, str(paths.postprocess))
    train, test = read_table(paths.prepared / "train.csv"), read_table(paths.prepared / "test.csv")
    gallery_emb = ensemble_embeddings(members, "train", train["image"], paths.embeddings)
    gallery = GalleryIndex.build(
        gallery_emb, train["image"], train["individual_id"], train["species"],
        settings={**rule.to_dict(), "knn": cfg.knn.to_dict(), "members": selection["members"],
                  "match": match.to_dict(), "region_fusion": post_json.get("region_fusion")},
    )  # fmt: skip
    answers: list[list[str]] = []
    confidence = pd.DataFrame(columns=["image", "answer", "candidate", "score", "margin", "scale"])
    if len(test):
        query_emb = ensemble_embeddings(members, "test", test["image"], paths.embeddings)
        regions = post_json.get("region_fusion")
        context = AnswerContext(
            rule, gallery, cfg.knn, match,
            load_feature_sets("train", match.regions, paths.features) if rule.calibrator else None,
            [load_head(path) for path in checkpoints] if rule.blends_head else (),
            rescore=(lambda sims, idx: fuse_query_regions(sims, idx, regions, members, test["image"], train,
                                                          paths.embeddings)) if regions else None,
        )  # fmt: skip
        sides = same_side(test, train)  # a known side matches only its side
        queries = Queries(test["image"].tolist(), query_emb,
                          lambda: load_feature_sets("test", match.regions, paths.features), sides)  # fmt: skip
        decided = compose_answers(context, queries).answers
        answers, confidence = decided.ids, answer_confidence(test["image"], decided, rule.scale)
    submission = make_submission(test["image"], answers)
    final = test_scores(paths.raw_dir, submission) | {"oof_map5": post_json["oof_map5"]}
    final = {k: round(float(v), 4) for k, v in final.items()}  # the DVC metrics: scores only, rounded
    final["test_new_share"] = round(float(np.mean([a[0] == NEW_INDIVIDUAL for a in answers])) if answers else 0.0, 4)
    return Prediction(submission, gallery, final, selection, post_json, rule, confidence)


def answer_confidence(images: pd.Series, answers: Answers, scale: str) -> pd.DataFrame:
    """Per test photo: its first answer, the best individual and its score, and the margin over the second.

    What `pseudo_round` picks confident photos from (`scale`: probability when verified, else similarity).
    """
    scores = answers.ranked.scores.astype(np.float64)
    second = np.where(np.isfinite(scores[:, 1]), scores[:, 1], 0.0) if scores.shape[1] > 1 else 0.0
    return pd.DataFrame({
        "image": images.to_numpy(), "answer": [a[0] for a in answers.ids], "candidate": answers.ranked.ids[:, 0],
        "score": scores[:, 0].round(6), "margin": (scores[:, 0] - second).round(6), "scale": scale,
    })  # fmt: skip


def log_ensemble_run(prediction: Prediction, artifacts: list[Path], registered_model: str | None) -> None:
    """The MLflow run `ensemble`: members, rule, scores, the written outputs and (optionally) the registered model.

    Args:
        artifacts: files logged under `outputs/` (the submission, the OOF predictions, the rule).
        registered_model: the pyfunc's registered name, or None for no model.
    """
    import mlflow

    members = pd.DataFrame(prediction.selection["members"])
    rule = prediction.rule
    digest = params_digest(prediction.selection, prediction.postprocess)
    with mlflow.start_run(run_name="ensemble", tags=standard_tags("predict", digest)):
        mlflow.log_params({"members": ", ".join(f"{m}/fold{f}" for m, f in zip(members["model"], members["fold"]))})
        mlflow.log_params({"threshold": rule.post.threshold, "k_neighbors": rule.post.k_neighbors, "scale": rule.scale,
                           "blend_weight": rule.post.blend_weight,
                           "ensemble_members": len(members),
                           "embedding_dim": int(prediction.gallery.embeddings.shape[1])})  # fmt: skip
        log_metrics(prediction.final)
        mlflow.log_dict(prediction.selection, "selection.json")
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="outputs")
        if registered_model:  # a pyfunc over whale_reid.identify.queries: `mlflow models predict` on photo paths
            logged = log_ensemble_model(Path("."), registered_model)
            text = model_description(members, prediction.final, rule.post.threshold, rule.scale)
            client = mlflow.MlflowClient()
            client.update_registered_model(registered_model, description=text)
            client.update_model_version(registered_model, logged.registered_model_version, description=text)


def write_predict_outputs(prediction: Prediction, match: MatchConfig, crop: Mapping, features: Path,
                          out: PredictOutputs) -> None:  # fmt: skip
    """The stage's files: the gallery `identify` queries (with the train photos' local features when verified,
    and the `crop` settings its crops were cut with), the submission and the per-photo confidence. The
    pseudo-label round writes its own round's through this function too.

    The features are written first: `gallery.json`, written last, records their digests.
    """
    settings = {**prediction.gallery.settings, "crop": dict(crop)}
    if prediction.rule.calibrator:
        settings[FEATURES_SHA256] = save_gallery_features(out.gallery, match.regions, features)
    dataclasses.replace(prediction.gallery, settings=settings).save(out.gallery)
    atomic_write_csv(out.submission, prediction.submission)
    atomic_write_csv(out.answers, prediction.confidence)
