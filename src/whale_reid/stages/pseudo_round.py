"""Pseudo-label rounds (the 1st place's lever): confident test answers become extra training photos.

Round r (the DVC stage `pseudo_round@<r>`, one per entry of `pseudo.round_stages`; [] = off):

1. pick the test photos whose answer the previous round is confident of (`select_confident`): not
   `new_individual`, a best score of at least `min_score` — the calibrated P(same individual) when the answers
   were verified (`match.enabled`), else the embedding similarity — and a lead of at least `min_margin` over
   the second individual;
2. train every model on the train photos plus those photos, labelled with their answer
   (`whale_reid.stages.train_embedder.train_model(pseudo=...)`: fold −1, so they train every fold and validate none);
3. select, tune and predict with the round's models, as the main stages do, into the round's folder.

No leak into tuning: `tune` builds its OOF queries and galleries from the prepared train table only, so a
pseudo-labelled photo is never an OOF query nor an OOF gallery photo (its embedding is in the fold files, but
nothing reads it there). Round 1 reads the main `predict`'s `test_answers.csv`; a round 2 would read round 1's
(a further dvc.yaml entry naming that file) — the stage is written for any round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from whale_core import NEW_INDIVIDUAL, Config, InputError, atomic_write_csv, atomic_write_json, read_table
from whale_detector import CropConfig
from whale_reid.answers.ensemble import member_checkpoints
from whale_reid.answers.verification import MatchConfig
from whale_reid.common.params import EmbedderParams
from whale_reid.common.tracking import TrackingConfig, configure_tracking, log_metrics, standard_tags
from whale_reid.stages.predict import (
    PredictConfig,
    PredictOutputs,
    PredictPaths,
    predict_test,
    write_predict_outputs,
)
from whale_reid.stages.select import SelectConfig, select_from_runs
from whale_reid.stages.train_embedder import TrainingPaths, train_model
from whale_reid.stages.tune import TunePaths, TuneStageConfig, tune_answer_rule, write_tune_outputs


@dataclass(frozen=True)
class PseudoConfig(Config):
    """params.yaml `pseudo`: which rounds run (`round_stages`, a DVC foreach list) and what counts as confident.

    Attributes:
        round_stages: [] = no round; [1] = one round (the stage `pseudo_round@1`).
        min_score: the best individual's score needed (probability when verified, else similarity).
        min_margin: its lead over the second individual's score needed.
    """

    SECTION = "pseudo"
    RANGES = {
        "round_stages": ">= 1",  # rounds are numbered from 1
        "min_score": "[-1, 1]",  # a probability, or a cosine similarity when unverified
        "min_margin": "[0, 2]",  # the difference of two such scores
    }
    round_stages: tuple[int, ...] = ()
    min_score: float = 0.9
    min_margin: float = 0.1


def select_confident(answers: pd.DataFrame, train: pd.DataFrame, cfg: PseudoConfig, round_number: int) -> pd.DataFrame:
    """The confident test photos of `answers` (a `test_answers.csv`), labelled with their answer.

    Returns:
        Columns image, individual_id, species (the individual's, from `train`), score, margin, source
        (`pseudo_round<r>`).

    Raises:
        InputError: `answers` lacks a column.
    """
    missing = [c for c in ("image", "answer", "candidate", "score", "margin") if c not in answers.columns]
    if missing:
        raise InputError(f"test answers: missing column {missing[0]!r} (re-run the predict stage)")
    score, margin = answers["score"].astype(float), answers["margin"].astype(float)
    keep = (answers["answer"] != NEW_INDIVIDUAL) & (answers["answer"] == answers["candidate"])
    keep &= (score >= cfg.min_score) & (margin >= cfg.min_margin)
    species = train.drop_duplicates("individual_id").set_index("individual_id")["species"]
    picked = answers[keep.to_numpy()]
    return pd.DataFrame({
        "image": picked["image"].to_numpy(), "individual_id": picked["answer"].to_numpy(),
        "species": species.reindex(picked["answer"]).fillna("").to_numpy(),
        "score": score[keep].to_numpy(), "margin": margin[keep].to_numpy(), "source": f"pseudo_round{round_number}",
    })  # fmt: skip


@dataclass(frozen=True)
class RoundPaths:
    """What a round reads (the previous answers, prepared tables, crops, features, raw data) and where it writes."""

    answers: Path
    prepared: Path
    crops: Path
    features: Path
    raw_dir: Path
    pseudo: Path
    models: Path
    embeddings: Path
    out: Path


def run_round(round_number: int, params: dict, paths: RoundPaths) -> dict:
    """One pseudo-label round, in an MLflow run `pseudo/round<r>` (the models' runs nested, then a child
    `round<r>` with its scores).

    Writes the picks (`paths.pseudo`), the round's models and embeddings, and under `paths.out` what the main
    stages write: selection.json, postprocess.json, oof_predictions.csv, submission.csv, test_answers.csv and
    the models' CV metrics. Returns the round's scores: n_pseudo, cv_map5_<model>, OOF and (demo) test MAP@5,
    the test share answered `new_individual` first.
    """
    import mlflow

    cfg, embedder = PseudoConfig.from_dict(params.get("pseudo")), EmbedderParams.from_dict(params.get("embedder"))
    tracking, match = TrackingConfig.from_dict(params.get("tracking")), MatchConfig.from_dict(params.get("match"))
    configure_tracking(tracking)
    picks = select_confident(read_table(paths.answers), read_table(paths.prepared / "train.csv"), cfg, round_number)
    atomic_write_csv(paths.pseudo, picks)
    cv = {}
    with mlflow.start_run(run_name=f"pseudo/round{round_number}", tags=standard_tags("pseudo_round", "")) as parent:
        mlflow.log_params({"round": round_number, "min_score": cfg.min_score, "min_margin": cfg.min_margin})
        for name in embedder.models:
            out = paths.out / "embedder"
            model_paths = TrainingPaths(paths.prepared, paths.crops, paths.models / name, paths.embeddings / name,
                                        out / f"{name}.json", out / f"{name}_curves.csv")  # fmt: skip
            cv[name] = (
                train_model(
                    embedder, tracking, name, model_paths, pseudo=picks, run_name=f"round{round_number}/embedder/{name}"
                )
                or {}
            ).get("cv_map5")
    selection = select_from_runs(paths.models, list(embedder.models), SelectConfig.from_dict(params.get("select")))
    member_checkpoints(pd.DataFrame(selection["members"]))  # a changed best.pt is named before the tune's work
    atomic_write_json(paths.out / "selection.json", selection)
    tune_cfg = TuneStageConfig.from_dict(params.get("tune"))
    with mlflow.start_run(run_id=parent.info.run_id):  # the round's tune run is a child of the round
        tuned = tune_answer_rule(tune_cfg, match, TunePaths(paths.out / "selection.json", paths.prepared / "train.csv",
                                                            paths.embeddings, paths.features))  # fmt: skip
    write_tune_outputs(tuned, paths.out / "postprocess.json", paths.out / "threshold_curve.csv",
                       paths.out / "oof_predictions.csv")  # fmt: skip
    prediction = predict_test(PredictConfig.from_dict(params.get("predict")), match,
                              PredictPaths(paths.out / "selection.json", paths.out / "postprocess.json", paths.prepared,
                                           paths.embeddings, paths.features, paths.raw_dir))  # fmt: skip
    crop = CropConfig.from_dict(params.get("crop")).to_dict()
    write_predict_outputs(prediction, match, crop, paths.features, PredictOutputs(
        paths.out / "submission.csv", paths.out / "test_answers.csv", paths.out / "gallery"))  # fmt: skip
    scores = {"n_pseudo": len(picks), **{f"cv_map5_{m}": v for m, v in cv.items() if v is not None},
              **prediction.final}  # fmt: skip
    with mlflow.start_run(run_id=parent.info.run_id), mlflow.start_run(run_name=f"round{round_number}", nested=True):
        log_metrics(scores)
    return scores
