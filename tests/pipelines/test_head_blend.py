"""The kNN + ArcFace-head blend: real heads from a saved checkpoint, blended through the one answer path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from whale_embedder import EmbedderConfig, EmbeddingModel, save_checkpoint
from whale_reid.answers.head_scores import head_scores, load_head, oof_head_scores
from whale_retrieval import AnswerRule, PostProcessing, knn_search

CLASSES = [f"ind{i}" for i in range(6)]
CFG = {"backbone": "mobilenetv3_small_050", "pretrained": False, "image_size": 32, "embedding_dim": 16}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real (untrained) EmbeddingModel's checkpoint with 2 sub-centres per class, as train_fold writes it."""
    cfg = EmbedderConfig.from_dict({**CFG, "arcface": {"subcenters": 2}})
    torch.manual_seed(0)
    model = EmbeddingModel(cfg, len(CLASSES))
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": cfg.to_dict(), "classes": CLASSES})
    return path, model


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_head_scores_are_the_heads_own_cosines(checkpoint):
    path, model = checkpoint
    emb = _unit(np.random.default_rng(0).normal(size=(7, 16)))
    expected = model.arcface.cosine(torch.from_numpy(emb)).detach().numpy()
    scores = head_scores(emb, [load_head(path)])
    assert scores.labels == tuple(CLASSES)
    np.testing.assert_allclose(scores.logits, expected, atol=1e-5)
    # two members (the same head twice, concatenated as the ensemble does): the mean is the same cosine
    twice = head_scores(np.hstack([emb, emb]) / np.sqrt(2), [load_head(path)] * 2)
    np.testing.assert_allclose(twice.logits, expected, atol=1e-5)


def test_oof_head_scores_say_nothing_outside_the_fold_gallery(checkpoint):
    path, _ = checkpoint
    emb = _unit(np.random.default_rng(1).normal(size=(5, 16)))
    head = load_head(path)
    stacked = oof_head_scores([(emb[:3], ["ind0", "ind1"]), (emb[3:], ["ind4"])], [[head], [head]])
    said = pd.DataFrame(np.isfinite(stacked.logits), columns=list(stacked.labels))
    assert said.loc[:2, ["ind0", "ind1"]].all().all() and not said.loc[:2, ["ind2", "ind3", "ind4", "ind5"]].any().any()
    assert said.loc[3:, "ind4"].all() and said.loc[3:].sum(axis=1).tolist() == [1, 1]


def _problem(checkpoint):
    """A gallery of two photos per class and queries near the photos, answered through AnswerRule."""
    path, _ = checkpoint
    rng = np.random.default_rng(2)
    gallery = _unit(rng.normal(size=(12, 16)))
    labels = np.repeat(CLASSES, 2)
    queries = _unit(gallery[::3] + 0.6 * rng.normal(size=(4, 16)))
    sims, idx = knn_search(queries, gallery, 8)
    return sims, idx, labels, head_scores(queries, [load_head(path)])


def test_blend_weight_zero_gives_the_knn_answers(checkpoint):
    sims, idx, labels, head = _problem(checkpoint)
    post = PostProcessing(threshold=0.3, k_neighbors=8)
    knn_only = AnswerRule(post).apply(sims, idx, labels)
    blended = AnswerRule(post.replace(blend_weight=0.0)).apply(sims, idx, labels, head=head)
    assert blended.ids == knn_only.ids
    np.testing.assert_array_equal(blended.ranked.scores, knn_only.ranked.scores)


def test_blend_weight_one_gives_the_heads_argmax_order(checkpoint):
    sims, idx, labels, head = _problem(checkpoint)
    rule = AnswerRule(PostProcessing(threshold=-1.1, k_neighbors=8, blend_weight=1.0))  # never new_individual
    answers = rule.apply(sims, idx, labels, head=head)
    head_order = np.asarray(head.labels)[np.argsort(-head.logits, axis=1, kind="stable")[:, :5]]
    assert answers.ids == head_order.tolist()
    assert answers.ids != AnswerRule(rule.post.replace(blend_weight=0.0)).apply(sims, idx, labels).ids
    with pytest.raises(Exception, match="no head scores"):
        rule.apply(sims, idx, labels)
