"""Target-share thresholding (the 1st place's rule): a batch gets the threshold that gives it a chosen share of
`new_individual` first; small batches keep the fixed threshold."""

from __future__ import annotations

import numpy as np
import pytest

from whale_core import ConfigError
from whale_retrieval import (
    AnswerRule,
    PostProcessing,
    insert_new_individual,
    most_frequent_ids,
    new_share_at,
    rank_individuals,
)

NEW = "new_individual"


def _batch(n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each query's 8 neighbours are 8 distinct gallery animals; scores are distinct and sorted per row."""
    rng = np.random.default_rng(seed)
    gallery_labels = [f"id{j}" for j in range(40)]
    idx = np.stack([rng.choice(40, size=8, replace=False) for _ in range(n_queries)])
    sims = -np.sort(-rng.uniform(0.2, 0.9, size=(n_queries, 8)), axis=1).astype(np.float32)
    return sims, idx, gallery_labels


def _share_first(ids: list[list[str]]) -> float:
    return float(np.mean([answers[0] == NEW for answers in ids]))


@pytest.mark.parametrize("share", [0.0, 0.165, 0.2, 0.5, 1.0])
def test_a_batch_gets_its_target_share_within_one_photo(share):
    sims, idx, labels = _batch(120)
    rule = AnswerRule(PostProcessing(threshold=0.0, k_neighbors=8, new_share=share))
    answers = rule.apply(sims, idx, labels)
    assert abs(_share_first(answers.ids) * 120 - share * 120) <= 1
    assert all(len(set(a)) == 5 for a in answers.ids)


def test_a_small_batch_keeps_the_fixed_threshold():
    sims, idx, labels = _batch(PostProcessing.SHARE_MIN_QUERIES - 1)
    shared = AnswerRule(PostProcessing(threshold=0.5, k_neighbors=8, new_share=0.9)).apply(sims, idx, labels)
    fixed = AnswerRule(PostProcessing(threshold=0.5, k_neighbors=8)).apply(sims, idx, labels)
    assert shared.ids == fixed.ids


def test_without_a_share_the_answers_are_the_fixed_thresholds():
    sims, idx, labels = _batch(60)
    ranked = rank_individuals(sims, idx, labels, 5)
    expected = insert_new_individual(ranked, 0.6, 5, pad_ids=most_frequent_ids(labels, 6))
    answers = AnswerRule(PostProcessing(threshold=0.6, k_neighbors=8)).apply(sims, idx, labels)
    assert answers.ids == expected
    assert _share_first(answers.ids) == pytest.approx(new_share_at(ranked, 0.6))


def test_new_share_at_counts_what_insert_new_individual_puts_first():
    sims, idx, labels = _batch(200, seed=3)
    ranked = rank_individuals(sims, idx, labels, 5)
    for threshold in (0.1, 0.45, 0.7, 0.95):
        assert new_share_at(ranked, threshold) == _share_first(insert_new_individual(ranked, threshold, 5))


def test_the_share_is_saved_and_validated():
    rule = AnswerRule(PostProcessing(threshold=0.3, k_neighbors=8, new_share=0.165))
    assert AnswerRule.from_dict(rule.to_dict()).post.new_share == 0.165
    assert AnswerRule.from_dict({"threshold": 0.3, "k_neighbors": 8}).post.new_share is None
    with pytest.raises(ConfigError, match="new_share"):
        PostProcessing(threshold=0.3, new_share=1.5)
