"""P(same) of a pair does not depend on how many other candidates a restriction leaves (identify --restrict)."""

from __future__ import annotations

import numpy as np

from whale_reid.answers.compose import AnswerContext, Queries, compose_answers, partitions
from whale_reid.answers.verification import MatchConfig
from whale_retrieval import AnswerRule, GalleryIndex, KnnConfig, PostProcessing
from whale_retrieval.fusion import fit_fusion
from whale_retrieval.postprocess import StackedNeighbours

N_ANIMALS, PHOTOS_EACH, SHORTLIST = 20, 3, 20


def _inliers(rng: np.random.Generator, same: np.ndarray, textured: np.ndarray) -> np.ndarray:
    """Verified inliers: ~60 for the same animal, ~8 for another, ~150 for another that is heavily textured."""
    return np.where(same, rng.poisson(60, same.shape), np.where(textured, rng.poisson(150, same.shape),
                                                                 rng.poisson(8, same.shape)))  # fmt: skip


def _rule(match: MatchConfig) -> AnswerRule:
    """A calibrator fitted, as the tune stage does, on simulated OOF shortlists of 20 verified candidates."""
    rng = np.random.default_rng(0)
    n = 400
    labels = np.repeat(np.arange(50), 4).astype(str)
    idx = np.stack([rng.permutation(len(labels))[:SHORTLIST] for _ in range(n)])
    truth = labels[rng.integers(0, len(labels), n)]
    idx[:, 0] = [np.flatnonzero(labels == t)[0] for t in truth]  # the animal is always in its shortlist
    same = labels[idx] == truth[:, None]
    sims = np.where(same, rng.normal(0.6, 0.1, idx.shape), rng.normal(0.4, 0.1, idx.shape)).astype(np.float32)
    order = np.argsort(-sims, axis=1)
    sims, idx, same = (np.take_along_axis(a, order, 1) for a in (sims, idx, same))
    evidence = {f"inliers_{r}": _inliers(rng, same, rng.random(idx.shape) < 0.05) for r in match.regions}
    stacked = StackedNeighbours(sims, idx, labels, None, truth.tolist())
    folds = np.arange(n) % 3
    _, calibrator = fit_fusion(stacked, evidence, folds, match.evidence_names, match.calibrator, SHORTLIST)
    return AnswerRule(PostProcessing(0.5, SHORTLIST), calibrator, SHORTLIST)


def test_a_restriction_to_two_photos_keeps_the_true_animal_and_its_probability():
    """The query shows gallery photo 0's animal (a0) at a typical same-animal similarity (0.6) and a strong
    local match (300 inliers). Against the whole gallery and against a
    restriction that leaves photo 0 and one textured photo of another animal, a0 is first with the same P(same)
    (within 0.1): each pair's evidence is its own, not relative to the other candidates."""
    match = MatchConfig(enabled=True, regions=("fullbody",))
    rule = _rule(match)
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(N_ANIMALS * PHOTOS_EACH, 32)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = [f"a{i // PHOTOS_EACH}" for i in range(len(emb))]
    gallery = GalleryIndex.build(emb, [f"g{i}" for i in range(len(emb))], labels)
    other = rng.normal(size=32)
    other -= (other @ emb[0]) * emb[0]
    query = (0.6 * emb[0] + 0.8 * other / np.linalg.norm(other))[None].astype(np.float32)  # cosine 0.6 to g0
    inliers = np.full(len(emb), 8)
    inliers[0], inliers[1:PHOTOS_EACH], inliers[PHOTOS_EACH] = 300, 60, 150  # g3: another, textured animal

    def evidence(keys, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"inliers_fullbody": np.where(idx >= 0, inliers[np.clip(idx, 0, None)], 0)}

    allowed = np.zeros(len(emb), bool)
    allowed[[0, PHOTOS_EACH]] = True
    results = []
    for mask in (None, allowed):
        context = AnswerContext(rule, gallery, KnnConfig(), match, evidence=evidence)
        answers = compose_answers(context, Queries(["q"], query, restrictions=partitions(["x"], [mask]))).answers
        results.append((answers.ids[0][0], float(answers.ranked.scores[0, 0])))
    (full_id, full_p), (restricted_id, restricted_p) = results
    assert full_id == restricted_id == "a0"
    assert full_p > 0.9
    assert abs(full_p - restricted_p) <= 0.1
