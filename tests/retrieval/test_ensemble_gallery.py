"""concat_embeddings against a hand-computed result; GalleryIndex save/load/query/add."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from whale_core import InputError
from whale_retrieval import NEW_INDIVIDUAL, AnswerRule, GalleryIndex, concat_embeddings, knn_search


def test_concat_equals_hand_computed() -> None:
    ids = ["a.jpg", "b.jpg"]
    first = np.array([[3.0, 4.0], [0.0, 2.0]])  # unit rows: (0.6, 0.8), (0, 1)
    second = np.array([[1.0], [-5.0]])  # unit rows: (1), (-1)
    out_ids, joined = concat_embeddings([(ids, first), (ids, second)], weights=[1.0, 2.0])
    # row a: (0.6, 0.8, 2) / sqrt(1 + 4); row b: (0, 1, -2) / sqrt(5)
    expected = np.array([[0.6, 0.8, 2.0], [0.0, 1.0, -2.0]]) / np.sqrt(5.0)
    assert out_ids == ids and joined.dtype == np.float32
    np.testing.assert_allclose(joined, expected, rtol=1e-6)


def test_concat_rejects_misaligned_ids_naming_the_position() -> None:
    emb = np.eye(3)
    with pytest.raises(InputError, match="part 1 lists 'c' at position 1 where part 0 lists 'b'"):
        concat_embeddings([(["a", "b", "c"], emb), (["a", "c", "b"], emb)])
    with pytest.raises(InputError, match="part 1 has 2 ids but 3 rows"):
        concat_embeddings([(["a", "b", "c"], emb), (["a", "b"], emb)])
    with pytest.raises(InputError, match=r"part 0 embeddings: 1 row\(s\) contain NaN"):
        concat_embeddings([(["a", "b", "c"], np.array([[1.0], [np.nan], [2.0]]))])


def make_gallery(rng: np.random.Generator) -> tuple[GalleryIndex, np.ndarray]:
    """Eight individuals, two photos each, near random centres (returned too)."""
    centres = rng.normal(size=(8, 12))
    rows = np.repeat(np.arange(8), 2)
    return GalleryIndex.build(
        centres[rows] + 0.1 * rng.normal(size=(16, 12)),
        [f"img{i}.jpg" for i in range(16)],
        [f"w{r}" for r in rows],
        ["orca" if r < 4 else "beluga" for r in rows],
        {"threshold": 0.5, "k_neighbors": 10},
    ), centres


def test_gallery_round_trip_and_query(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gallery, centres = make_gallery(rng)
    loaded = GalleryIndex.load(gallery.save(tmp_path / "gallery"))
    for name in ("embeddings", "image_ids", "labels", "species"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(gallery, name))
    assert loaded.settings == gallery.settings
    rule = AnswerRule.from_dict(loaded.settings)
    answers = rule.apply(*knn_search(centres[[2, 5]], loaded.embeddings, 10), loaded.labels, loaded.species)
    assert [a[0] for a in answers.ids] == ["w2", "w5"] and all(len(set(a)) == 5 for a in answers.ids)
    assert answers.ranked.scores.shape == (2, 5)
    stranger = rng.normal(size=(1, 12))
    far = AnswerRule.from_dict({**loaded.settings, "threshold": 1.01})
    assert far.apply(*knn_search(stranger, loaded.embeddings, 10), loaded.labels).ids[0][0] == NEW_INDIVIDUAL


def test_add_enrolls_a_new_animal_without_changing_the_old_index() -> None:
    rng = np.random.default_rng(1)
    gallery, _ = make_gallery(rng)
    newcomer = rng.normal(size=(1, 12))
    bigger = gallery.add(newcomer, ["new1.jpg"], ["w_new"], ["orca"])
    assert len(bigger) == 17 and len(gallery) == 16
    answers = AnswerRule.from_dict(bigger.settings).apply(*knn_search(newcomer, bigger.embeddings, 10), bigger.labels)
    assert answers.ids[0][0] == "w_new"
    with pytest.raises(InputError, match="'img0.jpg' appears 2 times"):
        gallery.add(newcomer, ["img0.jpg"], ["w_new"])
    with pytest.raises(InputError, match=r"expected \[n, 12\]"):
        gallery.add(np.ones((1, 3)), ["x.jpg"], ["w_x"])


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="gallery.npz: gallery file not found"):
        GalleryIndex.load(tmp_path)
    gallery, _ = make_gallery(np.random.default_rng(2))
    gallery.save(tmp_path)
    (tmp_path / "gallery.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="gallery.npz: not the file saved with .*gallery.json"):
        GalleryIndex.load(tmp_path)
