"""How many photos the answers call new: calibrators × threshold rules on one finished run's neighbours.

Run after `make demo` (or on any finished pipeline repo whose raw data has `test_labels.csv`):

    python benchmarks/new_share.py [--repo .]

Rebuilds what `tune` and `predict` score — the OOF neighbours of the selected ensemble with their verified
evidence (fold k's photos against the other folds, `tune.simulated_new_share` of the individuals hidden) and
the test photos' against the whole gallery — once, then for each calibrator fuses them (OOF by calibrators
cross-fitted over the folds, test by the one fitted on every OOF pair, as the stages do) and applies each
threshold rule. Prints one markdown row per variant: OOF and test MAP@5 (known / new), and the share of
queries answered `new_individual` first beside the share whose truth it is. The rows:

- calibrators: `isotonic` and `logistic` (params.yaml `match.calibrator`), and `isotonic, smoothed`: each input's
  isotonic step function replaced by the line through the midpoints of its flat steps (no step to straddle);
- thresholds: `map5` (the best OOF MAP@5), `unseen_share` (`threshold_for_truth_share`), `unseen_share,
  target_share` (each batch given the OOF share, `tune.threshold_mode: target_share`) and `best on test` (the
  test set's own best MAP@5: a ceiling no rule chosen on OOF can claim).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import NEW_INDIVIDUAL, configure_offline_env, read_table
from whale_reid.answers.ensemble import ensemble_embeddings, read_selection, same_side, stack_oof
from whale_reid.answers.verification import MatchConfig, load_feature_sets, shortlist_evidence
from whale_reid.common.params import load_params
from whale_reid.stages.tune import TuneStageConfig
from whale_retrieval import (
    AnswerRule,
    PostProcessing,
    knn_search_allowed,
    map5_with_threshold,
    rank_individuals,
    threshold_for_new_share,
    threshold_for_truth_share,
)
from whale_retrieval.answers import shortlist_references
from whale_retrieval.calibration import PairCalibrator, fit_calibrator
from whale_retrieval.fusion import labelled_pairs
from whale_retrieval.postprocess import StackedNeighbours
from whale_retrieval.ranking import RankedIndividuals

GRID = np.round(np.arange(0.0, 1.0001, 0.02), 2)


def smoothed(calibrator: PairCalibrator) -> PairCalibrator:
    """The isotonic maps as lines through the midpoints of their flat steps (ends kept)."""
    knots = []
    for kx, ky in calibrator.knots:
        x, y = np.asarray(kx), np.asarray(ky)
        starts = np.flatnonzero(np.r_[True, np.diff(y) != 0])
        ends = np.r_[starts[1:], len(y)] - 1
        mid_x = np.r_[x[0], (x[starts] + x[ends]) / 2, x[-1]]
        mid_y = np.r_[y[0], y[starts], y[-1]]
        knots.append((tuple(mid_x), tuple(mid_y)))
    return dataclasses.replace(calibrator, knots=tuple(knots))


def fitted(kind: str, evidence: dict, same: np.ndarray, features: tuple[str, ...], refs: dict) -> PairCalibrator:
    calibrator = fit_calibrator(evidence, same, features, "logistic" if kind == "logistic" else "isotonic")
    calibrator = smoothed(calibrator) if kind == "isotonic, smoothed" else calibrator
    return dataclasses.replace(calibrator, references=refs)


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished run's OOF problem (neighbours, folds, verified evidence) and its test photos' counterpart."""

    oof: StackedNeighbours
    folds: np.ndarray
    oof_evidence: dict[str, np.ndarray]
    test_sims: np.ndarray
    test_idx: np.ndarray
    gallery_labels: np.ndarray
    test_evidence: dict[str, np.ndarray]
    test_truth: list[str]
    width: int


def load_run(params: dict) -> Run:
    """Rebuild what `tune` and `predict` score, in the current directory (a finished pipeline repo)."""
    cfg, match = TuneStageConfig.from_dict(params.get("tune")), MatchConfig.from_dict(params.get("match"))
    members = pd.DataFrame(read_selection(Path("outputs/selection.json"))["members"])
    train = read_table(Path("data/prepared/train.csv")).astype({"fold": int})
    test = read_table(Path("data/prepared/test.csv"))
    k = cfg.search.k_neighbors_max
    stacked, queries = stack_oof(members, train, k, new_share=cfg.simulated_new_share, seed=cfg.search.seed)
    width = min(match.shortlist, k, stacked.idx.shape[1])
    gallery = load_feature_sets("train", match.regions)
    oof_evidence = shortlist_evidence(
        gallery, gallery, queries["image"].tolist(), stacked.gallery_images, stacked.idx, width, match, progress=False
    )
    query_emb = ensemble_embeddings(members, "test", test["image"])
    sides = same_side(test, train) or [(np.arange(len(test)), None)]
    sims, idx = knn_search_allowed(query_emb, ensemble_embeddings(members, "train", train["image"]), k, sides)
    queries_features = load_feature_sets("test", match.regions)
    test_evidence = shortlist_evidence(
        queries_features, gallery, test["image"].tolist(), train["image"].tolist(), idx, width, match, progress=False
    )
    labels = read_table(Path(params["data"]["raw_dir"]) / "test_labels.csv").set_index("image")["individual_id"]
    return Run(stacked, queries["fold"].to_numpy(), oof_evidence, sims, idx, train["individual_id"].to_numpy(),
               test_evidence, labels.loc[test["image"]].tolist(), width)  # fmt: skip


def fuse(kind: str, run: Run, features: tuple[str, ...]) -> tuple[RankedIndividuals, RankedIndividuals]:
    """(OOF ranked, test ranked) with `kind`'s calibrator: cross-fitted over the folds on OOF, all pairs on test."""
    stacked, evidence, width = run.oof, run.oof_evidence, run.width
    refs = shortlist_references({n: v[:, :width] for n, v in evidence.items()}, stacked.idx[:, :width] >= 0)
    pairs = labelled_pairs(stacked, evidence, refs)
    post = PostProcessing(0.5, stacked.sims.shape[1])
    sims, idx = np.empty(stacked.sims.shape, np.float32), np.empty(stacked.idx.shape, np.int64)
    for fold in np.unique(run.folds):
        rest = pairs.take(run.folds[pairs.query_row] != fold)
        rule = AnswerRule(post, fitted(kind, rest.evidence, rest.same, features, refs), width)
        rows = run.folds == fold
        sims[rows], idx[rows] = rule.fuse(
            stacked.sims[rows], stacked.idx[rows], {n: v[rows] for n, v in evidence.items()}
        )
    full = AnswerRule(post, fitted(kind, pairs.evidence, pairs.same, features, refs), width)
    test_sims, test_idx = full.fuse(run.test_sims, run.test_idx, run.test_evidence)
    return (rank_individuals(sims, idx, stacked.gallery_labels, 5),
            rank_individuals(test_sims, test_idx, run.gallery_labels, 5))  # fmt: skip


def row(kind: str, rule: str, ranked: tuple[RankedIndividuals, ...], truths: tuple, thresholds: tuple) -> str:
    """A markdown row: per population (OOF, test) MAP@5 (known / new), then the new-first share / the true share."""
    cells = [kind, rule]
    for scored, truth, threshold in zip(ranked, truths, thresholds):
        scores = map5_with_threshold(scored, truth, threshold)
        new = np.asarray([t == NEW_INDIVIDUAL for t in truth])
        first_new = np.mean(scored.scores[:, 0] < threshold)
        cells += [f"{scores.mean():.3f} ({scores[~new].mean():.3f} / {scores[new].mean():.3f})",
                  f"{first_new:.2f} / {new.mean():.2f}"]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def best_threshold(ranked: RankedIndividuals, truth: list[str]) -> float:
    return float(GRID[np.argmax([map5_with_threshold(ranked, truth, g).mean() for g in GRID])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."))
    repo = parser.parse_args().repo.resolve()
    configure_offline_env(repo)
    os.chdir(repo)
    params = load_params(repo / "params.yaml")
    run = load_run(params)
    features = MatchConfig.from_dict(params.get("match")).evidence_names
    print("| calibrator | threshold | OOF MAP@5 (known / new) | OOF new first / truth | test MAP@5 (known / new) |"
          " test new first / truth |\n|---|---|---|---|---|---|")  # fmt: skip
    for kind in ("isotonic", "isotonic, smoothed", "logistic"):
        ranked = fuse(kind, run, features)
        truths = (run.oof.truth, run.test_truth)
        best = best_threshold(ranked[0], run.oof.truth)
        share = threshold_for_truth_share(ranked[0], run.oof.truth)
        print(row(kind, "map5", ranked, truths, (best, best)))
        print(row(kind, "unseen_share", ranked, truths, (share, share)))
        if kind == "isotonic":
            batch = threshold_for_new_share(ranked[1], float(np.mean(ranked[0].scores[:, 0] < share)))
            print(row(kind, "unseen_share, target_share", ranked, truths, (share, batch)))
            on_test = best_threshold(ranked[1], run.test_truth)
            print(row(kind, "best on test", ranked, truths, (on_test, on_test)))


if __name__ == "__main__":
    main()
