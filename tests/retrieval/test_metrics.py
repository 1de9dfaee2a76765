"""MAP@5 against hand-computed values of Kaggle's `map_per_image` rule."""

from __future__ import annotations

import numpy as np
import pytest

from whale_core import InputError
from whale_retrieval import NEW_INDIVIDUAL, known_new_groups, map_at_5, map_at_5_by_group, map_at_5_per_image


@pytest.mark.parametrize(
    ("predicted", "label", "expected"),
    [
        (["a", "b", "c", "d", "e"], "a", 1.0),
        (["x", "y", "a", "d", "e"], "a", 1 / 3),
        (["x", "y", "z", "w", "v"], "a", 0.0),
        (["x", "y", "z", "w", "v", "a"], "a", 0.0),  # sixth place does not count
        (["x", "a", "a", "a", "a"], "a", 0.5),  # repeated id scores at its first position
        (["x", "x", "a"], "a", 1 / 3),  # repeats of a wrong id still take places
        (["a"], "a", 1.0),  # short list
        ([], "a", 0.0),
        (["x", "y", "z", NEW_INDIVIDUAL], NEW_INDIVIDUAL, 0.25),
    ],
)
def test_per_image_known_answers(predicted: list[str], label: str, expected: float) -> None:
    assert map_at_5_per_image([predicted], [label])[0] == pytest.approx(expected)


def test_mean_of_small_table() -> None:
    predictions = [["a", "b"], ["c", "a", "b"], ["z", "y", "x", "w", "b"], ["q"]]
    truth = ["a", "b", "b", "a"]
    # 1 + 1/3 + 1/5 + 0 = 23/15 over four images
    assert map_at_5(predictions, truth) == pytest.approx(23 / 60)
    per_image = map_at_5_per_image(predictions, truth)
    assert per_image.dtype == np.float64
    np.testing.assert_allclose(per_image, [1, 1 / 3, 1 / 5, 0])


def test_by_group_splits_known_and_new() -> None:
    predictions = [["a", NEW_INDIVIDUAL], [NEW_INDIVIDUAL, "a"], ["b", "c"]]
    truth = ["a", NEW_INDIVIDUAL, "c"]
    groups = known_new_groups(truth)
    assert groups == ["known", "new", "known"]
    assert map_at_5_by_group(predictions, truth, groups) == {"known": pytest.approx(0.75), "new": 1.0}


def test_length_mismatch_is_input_error() -> None:
    with pytest.raises(InputError, match="2 prediction lists but 1 truth"):
        map_at_5([["a"], ["b"]], ["a"])
    with pytest.raises(InputError, match="group"):
        map_at_5_by_group([["a"]], ["a"], ["g1", "g2"])


def test_empty_is_zero() -> None:
    assert map_at_5([], []) == 0.0
