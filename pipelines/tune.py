"""Stage `tune`: Optuna search of the post-processing knobs on out-of-fold retrieval of the selected ensemble.

Fold k's photos are the queries, the other folds the gallery, all embedded by the selected checkpoints
of fold k (which never trained on fold k). The study lives in `optuna.db` (resumable, viewable with
optuna-dashboard; named after the search space and ensemble, see `study_name`). Writes
`outputs/postprocess.json`, `outputs/threshold_curve.csv`, `outputs/oof_predictions.csv` and
`metrics/tune.json`; logs the best trial and the curve to MLflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from pipelines._common import load_params, params_digest, run_stage
from pipelines._tracking import TrackingConfig, configure_tracking, log_curves, standard_tags
from whale_core import Config, ConfigError, atomic_write_csv, atomic_write_json
from whale_reid.ensemble import stack_oof
from whale_reid.tables import read_json, read_table
from whale_reid.verification import MatchConfig, fuse_oof
from whale_retrieval import TuneConfig, map_at_5_by_group, map_at_5_per_image, new_share_at
from whale_retrieval.answers import AnswerRule
from whale_retrieval.postprocess import PostProcessing
from whale_retrieval.tuning import tune_on_neighbours

log = logging.getLogger("pipelines.tune")
TUNE_METRICS = ("oof_map5", "oof_map5_known", "oof_map5_new", "threshold", "grid_best_map5")


@dataclass(frozen=True)
class TuneStageConfig(Config):
    """params.yaml `tune`: the study's name and storage, the simulated share of unseen animals, the search.

    `simulated_new_share`: hide whole individuals from each OOF gallery until this share of the queries
    are unseen animals (see `whale_reid.ensemble.hide_individuals`); set it to the share expected at
    prediction time. `threshold_mode: target_share` saves the OOF share of `new_individual` first at the tuned
    threshold as `new_share`, and each predicted batch gets the threshold giving it that share
    (`PostProcessing.new_share`); `fixed` applies the tuned threshold as it is.
    """

    SECTION = "tune"
    study_name: str = "postprocess"
    storage: str = "sqlite:///optuna.db"
    simulated_new_share: float = 0.0
    threshold_mode: Literal["fixed", "target_share"] = "fixed"
    search: TuneConfig = TuneConfig()

    def __post_init__(self) -> None:
        if not 0.0 <= self.simulated_new_share < 1.0:
            raise ConfigError(f"tune.simulated_new_share: {self.simulated_new_share} is not in [0, 1)")


def study_name(cfg: TuneStageConfig, members: pd.DataFrame, match: MatchConfig) -> str:
    """`<study_name>-<digest>`: the digest covers the search space and the ensemble but not `n_trials`.

    So raising `n_trials` continues the same study (finished trials are kept, not repeated), while a new
    selection, search space or fusion starts a new one instead of mixing in trials scored on other scores.
    """
    space = {**cfg.search.to_dict(), "n_trials": None, "simulated_new_share": cfg.simulated_new_share}
    return f"{cfg.study_name}-{params_digest(space, members.to_dict(orient='records'), match.to_dict())}"


def main() -> None:
    params = load_params()
    cfg = TuneStageConfig.from_dict(params.get("tune"))
    match = MatchConfig.from_dict(params.get("match"))
    if match.enabled and cfg.search.k_neighbors_min < cfg.search.k_neighbors_max:
        raise ConfigError(
            "tune.search: k_neighbors is not tuned when match.enabled (the fusion re-ranks the neighbours): "
            "set k_neighbors_min equal to k_neighbors_max"
        )
    configure_tracking(TrackingConfig.from_dict(params.get("tracking")))  # an outage fails before the work
    members = pd.DataFrame(read_json("outputs/selection.json", "written by the select stage")["members"])
    train = read_table("data/prepared/train.csv").astype({"fold": int})

    stacked, queries = stack_oof(
        members, train, cfg.search.k_neighbors_max, new_share=cfg.simulated_new_share, seed=cfg.search.seed
    )
    calibrator = None
    if match.enabled:  # the threshold is then tuned on cross-fitted P(same), the scale predict applies it to
        stacked, calibrator = fuse_oof(stacked, queries, match, cfg.search.k_neighbors_max)

    import mlflow

    digest = params_digest(params.get("tune"), members.to_dict(orient="records"))
    with mlflow.start_run(run_name="tune", tags=standard_tags("tune", digest)) as run:
        mlflow.log_params({f"search.{k}": v for k, v in cfg.search.to_dict().items()})

        def on_trial(number: int, trial_params: dict, value: float) -> None:  # step = the trial's number
            mlflow.log_metrics({"trial_map5": value, "trial_threshold": trial_params["threshold"]}, step=number)

        study_attrs = {"members": [f"{m}/fold{f}" for m, f in zip(members["model"], members["fold"])],
                       "selection_digest": params_digest(members.to_dict(orient="records")),
                       "mlflow_run_id": run.info.run_id}  # fmt: skip
        result = tune_on_neighbours(
            stacked, cfg.search, study_name=study_name(cfg, members, match), storage=cfg.storage, on_trial=on_trial,
            user_attrs=study_attrs, progress=True,
        )  # fmt: skip
        post = PostProcessing.from_best_params(result.best_params, cfg.search.k_neighbors_max)
        if cfg.threshold_mode == "target_share":
            ranked = AnswerRule(post).apply(stacked.sims, stacked.idx, stacked.gallery_labels).ranked
            share = new_share_at(ranked, post.thresholds(stacked.idx, stacked.gallery_species))
            post = post.replace(new_share=round(share, 4))
        rule = AnswerRule(post, calibrator, match.shortlist if calibrator else 0)
        # The OOF neighbours are already fused (by the cross-fitted calibrators), so they are ranked as they are.
        oof_answers = AnswerRule(post).apply(stacked.sims, stacked.idx, stacked.gallery_labels, stacked.gallery_species)
        answers = oof_answers.ids
        per_image = map_at_5_per_image(answers, stacked.truth)
        by_group = map_at_5_by_group(
            answers, stacked.truth, ["new" if t == "new_individual" else "known" for t in stacked.truth]
        )
        summary = {
            **rule.to_dict(),
            "oof_map5": float(per_image.mean()),
            "oof_map5_known": by_group.get("known", 0.0),
            "oof_map5_new": by_group.get("new", 0.0),
            "grid_best_threshold": result.grid_best_threshold,
            "grid_best_map5": result.grid_best_map5,
            "n_trials": len(result.trials),
            "n_queries": len(per_image),
        }
        mlflow.log_metrics({k: v for k, v in summary.items() if k.startswith(("oof_", "grid_"))})
        mlflow.log_params({"best.threshold": post.threshold, "best.k_neighbors": post.k_neighbors})
        log_curves(result.grid, "threshold", ["map5"], "threshold_curve", "OOF MAP@5 against the threshold")

    oof = pd.DataFrame({
        "image": queries["image"], "fold": queries["fold"], "truth": stacked.truth,
        "predictions": [" ".join(a) for a in answers], "map5": per_image,
        "evidence_images": [" ".join(str(stacked.gallery_images[j]) if j >= 0 else "-" for j in rows)
                            for rows in oof_answers.best_rows(stacked.gallery_labels)],
    })  # fmt: skip
    atomic_write_csv("outputs/oof_predictions.csv", oof)
    atomic_write_csv("outputs/threshold_curve.csv", result.grid)
    mlflow.MlflowClient().log_artifact(run.info.run_id, str(atomic_write_json("outputs/postprocess.json", summary)))
    # the DVC metrics: the scores and the chosen threshold, rounded (the whole rule is in postprocess.json)
    atomic_write_json("metrics/tune.json", {k: round(float(summary[k]), 4) for k in TUNE_METRICS})
    log.info("OOF MAP@5 %.4f (grid %.4f) at threshold %.3f", summary["oof_map5"], result.grid_best_map5, post.threshold)


if __name__ == "__main__":
    run_stage(main)()
