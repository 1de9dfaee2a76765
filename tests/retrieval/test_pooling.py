"""Encounters answered together: the member photos' neighbours pooled, each individual scored by its best."""

from __future__ import annotations

import numpy as np

from whale_retrieval import AnswerRule, pool_neighbours

LABELS = np.asarray(["A", "B", "C", "D", "E", "F", "G"])
RULE = AnswerRule.from_dict({"threshold": 0.6, "k_neighbors": 3})


def test_an_encounter_scores_each_individual_by_its_best_member_photo() -> None:
    sims = np.asarray([[0.55, 0.50, 0.40], [0.80, 0.52, 0.30], [0.9, 0.2, 0.1]], dtype=np.float32)
    idx = np.asarray([[0, 1, 2], [1, 3, 0], [4, 5, 6]])
    alone = RULE.apply(sims, idx, LABELS)
    assert alone.ids[0][0] == "new_individual" and alone.ids[1][0] == "B"  # photo 0 alone: nothing above 0.6
    together = RULE.apply(sims, idx, LABELS, groups=["E1", "E1", ""])
    assert together.ids[0] == together.ids[1]
    assert together.ids[0][:4] == ["B", "new_individual", "A", "D"]  # B 0.80 (photo 1), A 0.55 (photo 0), D 0.52
    ranked = dict(zip(together.ranked.ids[0], together.ranked.scores[0]))
    assert np.isclose(ranked["A"], 0.55) and np.isclose(ranked["C"], 0.40)  # max over the photos, not a sum
    assert together.ids[2] == alone.ids[2]  # a photo of no encounter keeps its own answers


def test_no_groups_change_nothing() -> None:
    rng = np.random.default_rng(0)
    sims = np.sort(rng.uniform(0.3, 0.9, (6, 3)), axis=1)[:, ::-1].astype(np.float32)
    idx = np.stack([rng.permutation(7)[:3] for _ in range(6)])
    plain = RULE.apply(sims, idx, LABELS)
    assert RULE.apply(sims, idx, LABELS, groups=[""] * 6).ids == plain.ids
    pooled_s, pooled_i = pool_neighbours(sims, idx, [""] * 6)
    np.testing.assert_array_equal(pooled_s, sims)
    np.testing.assert_array_equal(pooled_i, idx)
