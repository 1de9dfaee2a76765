"""`whale-reid identify` on the tiny pipeline: the predict stage's answers, error rows, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tests.cli.conftest import IdentifyRun, read_table, run_in
from whale_reid.answers.ensemble import ensemble_embeddings


def test_identify_reproduces_the_predict_stage(identified: IdentifyRun) -> None:
    """With the tiny profile's rule: verified (a calibrator) and blending the ArcFace heads (weight ≥ 0.3)."""
    rule = json.loads((identified.repo / "outputs/postprocess.json").read_text())
    assert rule["calibrator"] is not None and rule["blend_weight"] >= 0.3
    matches = identified.matches
    tested = matches[matches["photo"].str.startswith("data/demo/test_images/")]
    answers = tested.groupby("photo", sort=False)["individual_id"].apply(" ".join)
    answers.index = [Path(p).name for p in answers.index]
    submission = read_table(identified.repo / "outputs/submission.csv").set_index("image")["predictions"]
    assert sorted(answers.index) == sorted(submission.index)
    assert (answers.loc[submission.index] == submission).all()
    assert all(ranks.tolist() == ["1", "2", "3", "4", "5"] for _, ranks in tested.groupby("photo")["rank"])


def test_identify_embeddings_are_the_stage_embeddings(identified: IdentifyRun) -> None:
    """Same crops, same checkpoints, same flip-TTA, same concatenation → the same numbers."""
    repo = identified.repo
    with np.load(identified.out / "query_embeddings.npz", allow_pickle=False) as saved:
        position = {Path(p).name: i for i, p in enumerate(saved["photo"])}
        emb = saved["emb"]
    test = read_table(repo / "data/prepared/test.csv")
    members = pd.DataFrame(json.loads((repo / "outputs/selection.json").read_text())["members"])
    reference = ensemble_embeddings(members, "test", test["image"], root=repo / "embeddings")
    ours = emb[[position[name] for name in test["image"]]]
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_similarity_and_species_come_from_the_gallery(identified: IdentifyRun) -> None:
    """Rank-1 similarity = the best cosine between the query and that individual's gallery rows (brute force)."""
    with np.load(identified.repo / "models/gallery/gallery.npz", allow_pickle=False) as gallery:
        g_emb, g_labels, g_species = gallery["embeddings"], gallery["labels"], gallery["species"]
    with np.load(identified.out / "query_embeddings.npz", allow_pickle=False) as saved:
        photos, emb = saved["photo"], saved["emb"]
    matches = identified.matches.set_index(["photo", "rank"])
    for photo, query in zip(photos[:5], emb[:5]):
        cosine = g_emb @ query
        top = matches.loc[(str(photo), "1")]
        if top["individual_id"] != "new_individual":
            best = cosine[g_labels == top["individual_id"]].max()
            assert abs(float(top["similarity"]) - best) < 1e-4
        near_best = cosine >= cosine.max() - 1e-5  # FAISS and numpy may order near-ties differently
        assert top["species"] in set(g_species[near_best])


def test_unreadable_photos_get_error_rows_and_the_rest_go_on(identified: IdentifyRun) -> None:
    matches = identified.matches
    errors = matches[matches["error"] != ""].set_index("photo")["error"]
    assert set(errors.index) == {str(identified.truncated), str(identified.not_an_image)}
    assert all(photo in message for photo, message in errors.items())
    grey = matches[matches["photo"] == str(identified.grayscale_png)]
    assert grey["rank"].tolist() == ["1", "2", "3", "4", "5"] and (grey["error"] == "").all()
    assert str(identified.notes) not in set(matches["photo"])  # a folder's non-images are skipped
    n_test = len(read_table(identified.repo / "data/prepared/test.csv"))
    assert matches["photo"].nunique() == n_test + 3


def test_missing_artefacts_and_no_photos_exit_2_with_one_line(identified: IdentifyRun, tmp_path: Path) -> None:
    photo = next((identified.repo / "data/demo/test_images").iterdir())
    proc = run_in(tmp_path, "whale-reid", "identify", str(photo), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "make demo" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run_in(identified.repo, "whale-reid", "identify", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no photos found" in proc.stderr
