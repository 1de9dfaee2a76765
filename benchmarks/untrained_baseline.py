"""Trained vs untrained: the same ensemble recipe with randomly initialised (untrained) networks.

Run after `make demo` (or on any finished pipeline repo):

    python benchmarks/untrained_baseline.py [--repo .]

For every member of `outputs/selection.json` it builds the same architecture with the member's config
and seed but no training, embeds the train (gallery) and test crops exactly as the pipeline does,
concatenates, retrieves, and scores test MAP@5 against `test_labels.csv` — at the tuned threshold and
at the best threshold *on the test set itself* (an optimistic baseline, which only favours it).
Prints a markdown table beside the trained pipeline's `metrics/final.json`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from whale_core import configure_offline_env
from whale_embedder import EmbeddingModel, extract_embeddings, load_checkpoint
from whale_embedder.config import EmbedderConfig
from whale_reid.common.params import load_params
from whale_reid.dataset.crops import crop_table
from whale_retrieval import (
    AnswerRule,
    PostProcessing,
    concat_embeddings,
    knn_search,
    map_at_5,
    rank_individuals,
    sweep_thresholds,
)


def untrained_embeddings(repo: Path, member: dict) -> tuple[np.ndarray, np.ndarray]:
    state = load_checkpoint(repo / member["checkpoint"])
    cfg = EmbedderConfig.from_dict(state["config"]).replace(pretrained=False, weights_file=None)
    torch.manual_seed(cfg.seed)
    model = EmbeddingModel(cfg, len(state["classes"])).eval()
    region = cfg.extract_region
    train = extract_embeddings(model, crop_table("train", [region], repo), cfg, progress=False)
    test = extract_embeddings(model, crop_table("test", [region], repo), cfg, progress=False)
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."))
    repo = parser.parse_args().repo.resolve()
    configure_offline_env(repo)
    os.chdir(repo)
    members = json.loads((repo / "outputs/selection.json").read_text())["members"]
    post = json.loads((repo / "outputs/postprocess.json").read_text())
    train = pd.read_csv(repo / "data/prepared/train.csv", dtype=str)
    test = pd.read_csv(repo / "data/prepared/test.csv", dtype=str)
    raw_dir = load_params(repo / "params.yaml")["data"]["raw_dir"]
    truth = pd.read_csv(repo / raw_dir / "test_labels.csv", dtype=str)
    truth = truth.set_index("image")["individual_id"].loc[test.image].tolist()

    parts = [untrained_embeddings(repo, m) for m in members]
    gallery = concat_embeddings([(train.image.tolist(), g) for g, _ in parts])[1]
    queries = concat_embeddings([(test.image.tolist(), q) for _, q in parts])[1]
    k = min(int(post["k_neighbors"]), len(gallery))
    sims, idx = knn_search(queries, gallery, k)
    tuned = AnswerRule(PostProcessing(post["threshold"], k)).apply(sims, idx, train.individual_id.tolist()).ids
    ranked = rank_individuals(sims, idx, train.individual_id.tolist(), 5)
    sweep = sweep_thresholds(ranked, truth, np.round(np.arange(0, 1.0001, 0.02), 2))
    final = json.loads((repo / "metrics/final.json").read_text())
    print("| embeddings | test MAP@5 (tuned threshold) | test MAP@5 (best threshold on test) |")
    print("|---|---|---|")
    print(f"| untrained ({len(members)} members) | {map_at_5(tuned, truth):.4f} | {sweep.map5.max():.4f} |")
    print(f"| trained pipeline | {final['test_map5']:.4f} | — |")


if __name__ == "__main__":
    main()
