"""The `tune` stage's work: Optuna search of the answer rule on out-of-fold retrieval of the selected ensemble.

Fold k's photos are the queries, the other folds the gallery, all embedded by the selected checkpoints of
fold k (which never trained on fold k). With `match.enabled` the threshold is tuned on cross-fitted
P(same individual), the scale `predict` applies it to. The study lives in `tune.storage` (resumable; named
after the search space and ensemble, see `study_name`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from whale_core import Config, ConfigError, atomic_write_csv, atomic_write_json, read_table
from whale_reid.answers.ensemble import read_selection, stack_oof
from whale_reid.answers.head_scores import oof_head
from whale_reid.answers.region_fusion import RegionFusionConfig, fuse_oof_regions
from whale_reid.answers.verification import MatchConfig, fuse_oof
from whale_reid.common.tracking import log_curves, log_metrics, params_digest, standard_tags
from whale_retrieval import (
    TuneConfig,
    known_new_groups,
    map_at_5_by_group,
    map_at_5_per_image,
    new_share_at,
    threshold_for_truth_share,
)
from whale_retrieval.answers import AnswerRule
from whale_retrieval.postprocess import PostProcessing, StackedNeighbours
from whale_retrieval.ranking import RankedIndividuals
from whale_retrieval.tuning import threshold_grid, tune_on_neighbours

#: the scores and the chosen threshold: the DVC metrics (the whole rule is in postprocess.json)
TUNE_METRICS = ("oof_map5", "oof_map5_known", "oof_map5_new", "threshold", "grid_best_map5", "oof_new_share",
                "oof_unseen_share")  # fmt: skip


@dataclass(frozen=True)
class TuneStageConfig(Config):
    """params.yaml `tune`: the study's name and storage, the simulated share of unseen animals, the search.

    `simulated_new_share`: hide whole individuals from each OOF gallery until this share of the queries
    are unseen animals (see `whale_reid.answers.ensemble.hide_individuals`); set it to the share expected at
    prediction time. `threshold_choice`: `unseen_share` sets the threshold at which the OOF share of
    `new_individual` first equals the share of OOF queries unseen in their fold's gallery
    (`whale_retrieval.threshold_for_truth_share`; the study still searches the other knobs by MAP@5); `map5`
    keeps the study's threshold of the best OOF MAP@5, which calls far more photos new than are (MAP@5 charges
    little for a known animal pushed from rank 1 to 2). `threshold_mode: target_share` saves the OOF share of
    `new_individual` first at the chosen threshold as `new_share`, and each predicted batch gets the threshold
    giving it that share (`PostProcessing.new_share`); `fixed` applies the chosen threshold as it is.
    `head_blend` tunes the weight of the kNN + ArcFace-head blend (`PostProcessing.blend_weight`, in
    [0, `search.blend_weight_max`]) on OOF head scores restricted to each fold's gallery
    (`whale_reid.answers.head_scores.oof_head`); off = neighbours alone.
    `region_fusion` re-scores every neighbour with a second region's similarity (`whale_reid.answers.region_fusion`).
    """

    SECTION = "tune"
    RANGES = {"simulated_new_share": "[0, 1)"}
    study_name: str = "postprocess"
    storage: str = "sqlite:///optuna.db"
    simulated_new_share: float = 0.0
    threshold_choice: Literal["unseen_share", "map5"] = "unseen_share"
    threshold_mode: Literal["fixed", "target_share"] = "fixed"
    head_blend: bool = False
    region_fusion: RegionFusionConfig = RegionFusionConfig()
    search: TuneConfig = TuneConfig()


@dataclass(frozen=True)
class TunePaths:
    """What `tune` reads: the selection, the prepared train table, the fold embeddings, the train features."""

    selection: Path
    train: Path
    embeddings: Path
    features: Path


@dataclass(frozen=True)
class TuneOutcome:
    """The tuned rule and how it scores: `summary` is postprocess.json, `oof` a row per OOF query."""

    summary: dict
    oof: pd.DataFrame
    grid: pd.DataFrame
    run_id: str


def study_name(cfg: TuneStageConfig, members: pd.DataFrame, match: MatchConfig, same_side: bool = False) -> str:
    """`<study_name>-<digest>`: the digest covers the search space and the ensemble but not `n_trials`.

    So raising `n_trials` continues the same study (finished trials are kept, not repeated), while a new
    selection, search space, fusion or side restriction (`same_side`: the photos' sides restrict the OOF search)
    starts a new one instead of mixing in trials scored on other scores.
    """
    space = {**cfg.search.to_dict(), "n_trials": None, "simulated_new_share": cfg.simulated_new_share}
    if same_side:  # keeps the digest of the searches without sides as it was
        space["same_side"] = True
    if cfg.head_blend:  # keeps the digest of the searches without the blend as it was
        space["head_blend"] = True
    if cfg.region_fusion.enabled:
        space["region_fusion"] = cfg.region_fusion.to_dict()
    return f"{cfg.study_name}-{params_digest(space, members.to_dict(orient='records'), match.to_dict())}"


def check_search(cfg: TuneStageConfig, match: MatchConfig) -> None:
    """Refuse a search the fusion makes meaningless: k_neighbors is not tuned when match.enabled."""
    if match.enabled and cfg.search.k_neighbors_min < cfg.search.k_neighbors_max:
        raise ConfigError(
            "tune.search: k_neighbors is not tuned when match.enabled (the fusion re-ranks the neighbours): "
            "set k_neighbors_min equal to k_neighbors_max"
        )


def tune_answer_rule(cfg: TuneStageConfig, match: MatchConfig, paths: TunePaths) -> TuneOutcome:
    """Stack the OOF retrieval, fuse it with local evidence (when enabled) and tune the rule, in an MLflow run.

    MLflow must be configured (`whale_reid.common.tracking.configure_tracking`); the run `tune` logs every trial.
    """
    import mlflow

    check_search(cfg, match)
    members = pd.DataFrame(read_selection(paths.selection)["members"])
    train = read_table(paths.train).astype({"fold": int})
    k_max = cfg.search.k_neighbors_max
    sided = "side" in train.columns and bool(train["side"].ne("").any())  # stack_oof searches by side then
    stacked, queries = stack_oof(members, train, k_max, new_share=cfg.simulated_new_share, seed=cfg.search.seed,
                                 root=paths.embeddings)  # fmt: skip
    stacked, regions = fuse_oof_regions(stacked, members, train, cfg.region_fusion, threshold_grid(cfg.search),
                                        new_share=cfg.simulated_new_share, seed=cfg.search.seed,
                                        root=paths.embeddings)  # fmt: skip
    calibrator = None
    if match.enabled:  # the threshold is then tuned on cross-fitted P(same), the scale predict applies it to
        stacked, calibrator = fuse_oof(stacked, queries, match, k_max, paths.features)
    head = None
    if cfg.head_blend:  # each fold's heads, restricted to the individuals its OOF gallery still shows
        head = oof_head(members, train, cfg.simulated_new_share, cfg.search.seed, paths.embeddings)
    records = members.to_dict(orient="records")
    tags = standard_tags("tune", params_digest(cfg.to_dict(), records))
    with mlflow.start_run(run_name="tune", tags=tags, nested=mlflow.active_run() is not None) as run:
        mlflow.log_params({f"search.{k}": v for k, v in cfg.search.to_dict().items()})

        def on_trial(number: int, trial_params: dict, value: float) -> None:  # step = the trial's number
            log_metrics({"trial_map5": value, "trial_threshold": trial_params["threshold"]}, step=number)

        study_attrs = {"members": [f"{m}/fold{f}" for m, f in zip(members["model"], members["fold"])],
                       "selection_digest": params_digest(records), "mlflow_run_id": run.info.run_id}  # fmt: skip
        result = tune_on_neighbours(stacked, cfg.search, study_name=study_name(cfg, members, match, sided),
                                    storage=cfg.storage, on_trial=on_trial, user_attrs=study_attrs,
                                    progress=sys.stderr.isatty(),  # a log file gets no bar frames
                                    classifier_logits=None if head is None else head.logits,
                                    classifier_labels=None if head is None else head.labels)  # fmt: skip
        post = PostProcessing.from_best_params(result.best_params, k_max)
        k = post.k_neighbors  # the OOF neighbours are already fused: rank them as AnswerRule.decide does
        ranked = AnswerRule(post).rank(stacked.sims[:, :k], stacked.idx[:, :k], stacked.gallery_labels, head)
        if cfg.threshold_choice == "unseen_share":
            post = post.replace(threshold=unseen_share_threshold(ranked, stacked, post, cfg.search))
        oof_share = new_share_at(ranked, post.thresholds(stacked.idx, stacked.gallery_species))
        if cfg.threshold_mode == "target_share":
            post = post.replace(new_share=round(oof_share, 4))
        rule = AnswerRule(post, calibrator, match.shortlist if calibrator else 0)
        # The OOF neighbours are already fused (by the cross-fitted calibrators), so they are ranked as they are.
        oof_answers = AnswerRule(post).apply(stacked.sims, stacked.idx, stacked.gallery_labels, stacked.gallery_species,
                                             head=head)  # fmt: skip
        per_image = map_at_5_per_image(oof_answers.ids, stacked.truth)
        by_group = map_at_5_by_group(oof_answers.ids, stacked.truth, known_new_groups(stacked.truth))
        summary = {
            **rule.to_dict(),
            "oof_map5": float(per_image.mean()),
            "oof_map5_known": by_group.get("known", 0.0),
            "oof_map5_new": by_group.get("new", 0.0),
            "oof_new_share": oof_share,
            "oof_unseen_share": float(np.mean([label == "new" for label in known_new_groups(stacked.truth)])),
            "grid_best_threshold": result.grid_best_threshold,
            "grid_best_map5": result.grid_best_map5,
            "n_trials": len(result.trials),
            "n_queries": len(per_image),
            "region_fusion": regions,
        }
        log_metrics({k: v for k, v in summary.items() if k.startswith(("oof_", "grid_"))})
        mlflow.log_params({"best.threshold": post.threshold, "best.k_neighbors": post.k_neighbors,
                           "best.blend_weight": post.blend_weight})  # fmt: skip
        log_curves(result.grid, "threshold", ["map5"], "threshold_curve", "OOF MAP@5 against the threshold")
    oof = pd.DataFrame({
        "image": queries["image"], "fold": queries["fold"], "truth": stacked.truth,
        "predictions": [" ".join(a) for a in oof_answers.ids], "map5": per_image,
        "evidence_images": [" ".join(str(stacked.gallery_images[j]) if j >= 0 else "-" for j in rows)
                            for rows in oof_answers.best_rows(stacked.gallery_labels)],
    })  # fmt: skip
    return TuneOutcome(summary, oof, result.grid, run.info.run_id)


def unseen_share_threshold(
    ranked: RankedIndividuals, stacked: StackedNeighbours, post: PostProcessing, search: TuneConfig
) -> float:
    """The threshold giving as many OOF queries `new_individual` first as are unseen in their fold's gallery, on
    the thresholds with `post`'s species offsets added; clipped to the searched [threshold_min, threshold_max]."""
    offsets = np.asarray(post.thresholds(stacked.idx, stacked.gallery_species, 0.0), dtype=np.float64)
    threshold = threshold_for_truth_share(ranked, stacked.truth, offsets)
    return round(float(np.clip(threshold, search.threshold_min, search.threshold_max)), 6)


def write_tune_outputs(tuned: TuneOutcome, postprocess: Path, curve: Path, oof: Path) -> None:
    """The stage's files: the OOF answers, the threshold curve (the chosen row marked), the rule `postprocess.json`
    (also logged to the tune run). The pseudo-label round writes its own round's through this function too."""
    import mlflow

    summary = tuned.summary
    atomic_write_csv(oof, tuned.oof)
    nearest = (tuned.grid["threshold"] - summary["threshold"]).abs().to_numpy().argmin()  # the tuned one's row
    atomic_write_csv(curve, tuned.grid.assign(chosen=(tuned.grid.index == tuned.grid.index[nearest]).astype(int)))
    mlflow.MlflowClient().log_artifact(tuned.run_id, str(atomic_write_json(postprocess, summary)))
