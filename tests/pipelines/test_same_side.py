"""A catalogue's `side`: in tune's OOF search and predict's test search a photo of a known side matches only
photos of its side (or of unknown side); with no side known the answers are exactly those without the column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from whale_core import NEW_INDIVIDUAL
from whale_embedder import save_embeddings
from whale_reid.answers.ensemble import stack_oof
from whale_reid.answers.verification import MatchConfig
from whale_reid.stages.predict import PredictConfig, PredictPaths, predict_test
from whale_reid.stages.tune import TuneStageConfig, study_name
from whale_retrieval.answers import AnswerRule
from whale_retrieval.postprocess import PostProcessing

#: image, individual, side, fold, embedding = e0 + weight · e_axis. The query `q` (A, left, e0) is nearest to
#: `b_right` (B's right flank); its own individual's left flank and other left or unknown photos lie further.
TRAIN = [
    ("q", "A", "left", 0, 1, 0.0),
    ("h_right", "H", "right", 0, 7, 50.0),  # H's right flank: far from everything but H's left flank
    ("b_right", "B", "right", 1, 1, 0.1),
    ("a_left", "A", "left", 1, 2, 1.0),
    ("c_unknown", "C", "", 1, 3, 1.5),
    ("d_left", "D", "left", 1, 4, 2.0),
    ("e_left", "E", "left", 1, 5, 3.0),
    ("f_left", "F", "left", 1, 6, 4.0),
    ("h_left", "H", "left", 1, 7, 40.0),
]


def _embedding(axis: int, weight: float) -> np.ndarray:
    vector = np.zeros(8, np.float32)
    vector[0], vector[axis] = 1.0, weight
    return vector / np.linalg.norm(vector)


def _workdir(root: Path, sides: list[str] | None) -> PredictPaths:
    """Prepared tables (with `sides` as the side column, or none), two members' embeddings, a rule."""
    prepared, embeddings = root / "data/prepared", root / "embeddings"
    prepared.mkdir(parents=True)
    train = pd.DataFrame([row[:4] for row in TRAIN], columns=["image", "individual_id", "side", "fold"])
    train = train.assign(species="bottlenose_dolphin")
    test = pd.DataFrame({"image": ["t"], "side": ["left"]})  # exactly b_right's embedding
    if sides is None:
        train, test = train.drop(columns="side"), test.drop(columns="side")
    else:
        train["side"] = sides
    train.to_csv(prepared / "train.csv", index=False)
    test.to_csv(prepared / "test.csv", index=False)
    train_emb = np.stack([_embedding(axis, weight) for *_, axis, weight in TRAIN])
    members = [{"model": "m", "fold": fold} for fold in (0, 1)]
    for fold in (0, 1):
        save_embeddings(embeddings / "m" / f"fold{fold}" / "train.npz", train["image"], train_emb)
        save_embeddings(embeddings / "m" / f"fold{fold}" / "test.npz", ["t"], train_emb[[2]])
    for member in members:  # a checkpoint file per member: predict verifies them (no fold.json: no digest)
        member["checkpoint"] = str(root / f"best{member['fold']}.pt")
        Path(member["checkpoint"]).write_bytes(b"weights")
    (root / "selection.json").write_text(json.dumps({"members": members}))
    rule = AnswerRule(PostProcessing(threshold=0.5, k_neighbors=8)).to_dict() | {"oof_map5": 1.0}
    (root / "postprocess.json").write_text(json.dumps(rule))
    selection, postprocess, features = root / "selection.json", root / "postprocess.json", root / "features"
    return PredictPaths(selection, postprocess, prepared, embeddings, features, root / "raw")


def _oof(paths: PredictPaths):
    members = pd.DataFrame(json.loads(paths.selection.read_text())["members"])
    train = pd.read_csv(paths.prepared / "train.csv", dtype=str, keep_default_na=False).astype({"fold": int})
    return stack_oof(members, train, 8, root=paths.embeddings)


def _predictions(paths: PredictPaths) -> list[str]:
    prediction = predict_test(PredictConfig(registered_model=None), MatchConfig(enabled=False), paths)
    return prediction.submission["predictions"].iloc[0].split()


def test_a_photo_of_a_known_side_never_has_a_photo_of_the_other_side_as_a_candidate(tmp_path: Path) -> None:
    sides = [side for _, _, side, *_ in TRAIN]
    with_sides = _workdir(tmp_path / "sides", sides)
    stacked, queries = _oof(with_sides)
    images = stacked.gallery_images
    side_of = dict(zip([row[0] for row in TRAIN], sides))
    q = int(np.flatnonzero(queries["image"] == "q")[0])
    assert [images[j] for j in stacked.idx[q]] == ["a_left", "c_unknown"]  # b_right is nearer, but the right side
    for row, image in enumerate(queries["image"]):  # no query of a known side gets a photo of the other side
        found = {side_of[images[j]] for j in stacked.idx[row] if j >= 0}
        assert found <= ({side_of[image], ""} if side_of[image] else {"left", "right", ""}), image
    h_left = int(np.flatnonzero(queries["image"] == "h_left")[0])
    assert stacked.idx[h_left].tolist()[1:] == [-1]  # fold 0's only left photo (q), then nothing
    assert stacked.truth[h_left] == NEW_INDIVIDUAL  # H is in that gallery by its right flank only
    answers = _predictions(with_sides)
    assert answers[0] == "A" and "B" not in answers  # the test photo is b_right's twin, but of the left side

    no_side_known = _workdir(tmp_path / "empty", [""] * len(TRAIN))
    no_column = _workdir(tmp_path / "none", None)
    (stacked_empty, _), (stacked_none, _) = _oof(no_side_known), _oof(no_column)
    assert [images[j] for j in stacked_none.idx[q]] == ["b_right", "a_left"]  # without sides: the other side
    assert stacked_none.truth[h_left] == "H"
    for name in ("sims", "idx", "gallery_labels", "truth"):
        assert np.array_equal(np.asarray(getattr(stacked_empty, name)), np.asarray(getattr(stacked_none, name)))
    assert _predictions(no_side_known) == _predictions(no_column) and _predictions(no_column)[0] == "B"


def test_searching_by_side_starts_a_new_study_and_leaves_the_name_of_one_without_sides() -> None:
    """Trials scored on side-restricted neighbours must not be mixed into a study of unrestricted ones."""
    cfg, members, match = TuneStageConfig(), pd.DataFrame({"model": ["m"], "fold": [0]}), MatchConfig(enabled=False)
    plain = study_name(cfg, members, match)
    assert study_name(cfg, members, match, same_side=True) != plain
    assert plain == study_name(cfg, members, match, same_side=False)
