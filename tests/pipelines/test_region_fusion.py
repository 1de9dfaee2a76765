"""Region fusion: fullbody neighbours re-scored with the backfin similarity, w chosen on OOF-like data."""

from __future__ import annotations

import numpy as np
import pytest

from whale_core import ConfigError
from whale_reid.answers.region_fusion import (
    RegionFusionConfig,
    choose_weight,
    fuse_regions,
    gallery_weights,
    neighbour_similarity,
)
from whale_retrieval import AnswerRule, PostProcessing, knn_search

N_IND, PHOTOS = 12, 4


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _population(seed: int = 0):
    """Each individual a fullbody and a fin signature; the fullbody photos are noisy, the fin photos clean."""
    rng = np.random.default_rng(seed)
    body, fin = rng.normal(size=(N_IND, 24)), rng.normal(size=(N_IND, 24))
    ids = np.repeat(np.arange(N_IND), PHOTOS)
    species = np.where(ids % 3 == 0, "beluga", "killer_whale")
    full = _unit(body[ids] + 1.6 * rng.normal(size=(len(ids), 24)))
    back = _unit(fin[ids] + 0.3 * rng.normal(size=(len(ids), 24)))
    labels = np.asarray([f"ind{i}" for i in ids], dtype=object)
    return full, back, labels, species


def _split():
    full, back, labels, species = _population()
    query = np.arange(len(labels)) % PHOTOS == 0  # one photo of each individual queries the others
    sims, idx = knn_search(full[query], full[~query], 20)
    second = neighbour_similarity(back[query], back[~query], idx)
    return sims, idx, second, labels[~query], species[~query], labels[query]


def test_weight_zero_gives_the_fullbody_answers():
    sims, idx, second, labels, species, _ = _split()
    fused_sims, fused_idx = fuse_regions(sims, idx, second, gallery_weights(species, 0.0, ["beluga"]))
    np.testing.assert_array_equal(fused_idx, idx)
    np.testing.assert_array_equal(fused_sims, sims)
    rule = AnswerRule(PostProcessing(threshold=0.2, k_neighbors=20))
    assert rule.apply(fused_sims, fused_idx, labels).ids == rule.apply(sims, idx, labels).ids


def test_species_without_a_fin_keep_their_fullbody_similarity():
    sims, idx, second, labels, species, _ = _split()
    fused_sims, fused_idx = fuse_regions(sims, idx, second, gallery_weights(species, 0.5, ["beluga"]))
    by_pair = {(q, j): s for q in range(len(idx)) for j, s in zip(fused_idx[q], fused_sims[q])}
    raw = {(q, j): s for q in range(len(idx)) for j, s in zip(idx[q], sims[q])}
    beluga = [pair for pair in raw if species[pair[1]] == "beluga"]
    others = [pair for pair in raw if species[pair[1]] != "beluga"]
    assert beluga and all(by_pair[pair] == raw[pair] for pair in beluga)
    assert any(by_pair[pair] != raw[pair] for pair in others)
    assert (np.diff(fused_sims, axis=1) <= 0).all()  # re-sorted, best first


def test_the_clean_fin_earns_a_weight_and_raises_map5():
    sims, idx, second, labels, species, truth = _split()
    cfg = RegionFusionConfig(enabled=True, weights=(0.0, 0.25, 0.5))
    weight, table = choose_weight(sims, idx, labels, species, list(truth), second, cfg, [-1.0])
    assert weight > 0
    assert table.set_index("weight").map5[weight] > table.set_index("weight").map5[0.0]
    with pytest.raises(ConfigError, match="weights"):
        RegionFusionConfig(weights=(1.5,))
