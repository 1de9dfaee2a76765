"""Survey metadata (seconds, no pipeline): the sidecar read strictly, candidates restricted by location, side and
date, shown on the review page; encounters answered together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_in
from whale_core import InputError
from whale_reid.answers.compose import AnswerContext, Queries, compose_answers, partitions
from whale_reid.catalogue.metadata import Survey, candidate_mask, read_sidecar, restriction_text
from whale_reid.review.pages import render_section
from whale_reid.review.views import QueryView
from whale_retrieval import AnswerRule, GalleryIndex, KnnConfig

RULE = AnswerRule.from_dict({"threshold": 0.2, "k_neighbors": 6})


def gallery_and_metadata() -> tuple[GalleryIndex, pd.DataFrame]:
    """12 photos of 6 individuals; individuals 0–2 seen at Andenes, 3–5 at Tromsø; left then right flank."""
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(12, 16)).astype(np.float32)
    gallery = GalleryIndex.build(emb / np.linalg.norm(emb, axis=1, keepdims=True), [f"g{i}" for i in range(12)],
                                 [f"ind{i % 6}" for i in range(12)])  # fmt: skip
    meta = pd.DataFrame({"encounter": "", "date": ["2024-06-01"] * 6 + ["2023-01-01"] * 6,
                         "location": ["Andenes" if i % 6 < 3 else "Tromsø" for i in range(12)],
                         "side": ["left"] * 6 + ["right"] * 6})  # fmt: skip
    return gallery, meta


def test_a_sidecar_with_two_locations_restricts_candidates_to_the_query_location(tmp_path: Path) -> None:
    gallery, meta = gallery_and_metadata()
    photos = [tmp_path / "day1" / "a.jpg", tmp_path / "day1" / "b.jpg", tmp_path / "c.jpg"]
    sidecar = tmp_path / "meta.csv"
    sidecar.write_text("photo,location,side,date,notes\nday1/a.jpg,Andenes,,,calm\nb.jpg,Tromsø,Left,2024-06-03,\n")
    table = read_sidecar(sidecar, photos)
    assert table.loc[str(photos[1])].tolist() == ["", "2024-06-03", "Tromsø", "left"]
    survey = Survey(table, meta, ("location", "side"), date_window=10)
    filters = survey.restrictions(photos)
    assert [t for t, _ in filters] == ["location=Andenes", "location=Tromsø; side=left; date=2024-06-03±10d", ""]
    query = np.concatenate([gallery.embeddings[[3]], gallery.embeddings[[0]], gallery.embeddings[[3]]])
    texts, masks = zip(*filters)
    composed = compose_answers(AnswerContext(RULE, gallery, KnnConfig()),
                               Queries(["a", "b", "c"], query, restrictions=partitions(texts, masks)))  # fmt: skip
    answers, raw_idx = composed.answers, composed.idx
    assert set(answers.ids[0]) <= {"ind0", "ind1", "ind2", "new_individual"}  # its twin (ind3) is at Tromsø
    assert set(answers.ids[1]) <= {"ind3", "ind4", "ind5", "new_individual"}  # Tromsø, left, in June 2024
    assert set(gallery.labels[raw_idx[1][raw_idx[1] >= 0]]) <= {"ind3", "ind4", "ind5"}
    assert answers.ids[2][0] == "ind3"  # no metadata: the whole gallery
    view = QueryView(photo=str(photos[0]), key=str(photos[0]), filters=texts[0])
    assert "candidates: location=Andenes" in render_section(0, view)


def test_an_encounter_is_answered_together(tmp_path: Path) -> None:
    gallery, meta = gallery_and_metadata()
    query = np.stack([gallery.embeddings[0] + 0.05, -gallery.embeddings[0]])
    queries = Queries(["a", "b"], query.astype(np.float32), groups=["E7", "E7"])
    answers = compose_answers(AnswerContext(RULE, gallery, KnnConfig()), queries).answers
    assert answers.ids[0] == answers.ids[1] and answers.ids[0][0] == "ind0"  # the poor second photo is carried


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("where,location\nx,y\n", "missing column 'photo'"),
        ("photo,date\na.jpg,1 June\n", "line 2: date '1 June' is not YYYY-MM-DD"),
        ("photo,side\na.jpg,top\n", "line 2: side 'top' must be 'left', 'right' or empty"),
        ("photo,side\na.jpg,left\na.jpg,right\n", "line 3: photo 'a.jpg' is listed twice"),
    ],
)
def test_a_bad_sidecar_is_one_line_naming_the_row(tmp_path: Path, text: str, message: str) -> None:
    sidecar = tmp_path / "meta.csv"
    sidecar.write_text(text)
    with pytest.raises(InputError, match=message):
        read_sidecar(sidecar, [tmp_path / "a.jpg"])


def test_gallery_photos_of_unknown_date_side_or_location_are_left_out() -> None:
    gallery, meta = gallery_and_metadata()
    meta.loc[0, ["date", "side", "location"]] = ""
    query = pd.Series({"encounter": "", "date": "2024-01-01", "location": "Andenes", "side": "left"})
    mask = candidate_mask(query, meta, ("side",), 400)
    assert mask.tolist() == [False] + [True] * 5 + [False] * 6  # row 0 unknown; rows 6–11 right flanks
    assert restriction_text(query, ("side",), 400) == "side=left; date=2024-01-01±400d"
    assert candidate_mask(query.replace("left", ""), meta, ("side",), None) is None  # nothing to restrict by


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--restrict", "location"], "--restrict and --date-window need --metadata FILE"),
        (["--metadata", "missing.csv"], "missing.csv: metadata file not found"),
        (["--metadata", "m.csv", "--restrict", "place"], "--restrict: unknown 'place' (choose from location, side)"),
    ],
)
def test_metadata_mistakes_fail_before_anything_is_loaded(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "p.jpg").write_bytes(b"\xff\xd8\xff not really")
    (tmp_path / "m.csv").write_text("photo,location\np.jpg,Andenes\n")
    proc = run_in(tmp_path, "whale-reid", "identify", "p.jpg", *args, "--out", "out")  # no pipeline here
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
