"""Kaggle's MAP@5 for Happywhale: per image 1/rank of the first correct id within the first five, else 0.

Follows the competition's `map_per_image` exactly: the rank is that of the FIRST occurrence of the
true id in the first five predictions (`predictions[:5].index(label)`), so a repeated id scores at
its first position; lists shorter than five are fine; `new_individual` is an id like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from whale_core import NEW_INDIVIDUAL, InputError


def _check_lengths(predictions: Sequence[Sequence[str]], truth: Sequence[str], what: str = "truth") -> None:
    if len(predictions) != len(truth):
        raise InputError(f"MAP@5: {len(predictions)} prediction lists but {len(truth)} {what} entries")


def map_at_5_per_image(predictions: Sequence[Sequence[str]], truth: Sequence[str]) -> np.ndarray:
    """Score of each image: 1/rank of the first occurrence of its true id in the first five, else 0.

    Args:
        predictions: one list of predicted ids per image, best first (any length; only five are read).
        truth: the true id of each image (`NEW_INDIVIDUAL` for animals absent from the gallery).

    Returns:
        float64 array of shape [n_images] with values in {0, 1/5, 1/4, 1/3, 1/2, 1}.

    Raises:
        InputError: when the two sequences differ in length.
    """
    _check_lengths(predictions, truth)
    scores = np.zeros(len(truth), dtype=np.float64)
    for i, (predicted, label) in enumerate(zip(predictions, truth)):
        top5 = list(predicted)[:5]
        if label in top5:
            scores[i] = 1.0 / (top5.index(label) + 1)
    return scores


def map_at_5(predictions: Sequence[Sequence[str]], truth: Sequence[str]) -> float:
    """Mean of `map_at_5_per_image` over all images (0.0 for an empty set)."""
    scores = map_at_5_per_image(predictions, truth)
    return float(scores.mean()) if scores.size else 0.0


def map_at_5_by_group(
    predictions: Sequence[Sequence[str]], truth: Sequence[str], groups: Sequence[str]
) -> dict[str, float]:
    """MAP@5 within each group of images (e.g. "known"/"new", or species), keys sorted.

    Args:
        groups: the group name of each image, aligned with `truth`.

    Raises:
        InputError: when the three sequences differ in length.
    """
    _check_lengths(predictions, truth)
    _check_lengths(predictions, groups, what="group")
    scores = map_at_5_per_image(predictions, truth)
    group_arr = np.asarray([str(g) for g in groups], dtype=object)
    return {name: float(scores[group_arr == name].mean()) for name in sorted(set(group_arr.tolist()))}


def known_new_groups(truth: Sequence[str]) -> list[str]:
    """The usual split for `map_at_5_by_group`: "new" where the truth is `NEW_INDIVIDUAL`, else "known"."""
    return ["new" if label == NEW_INDIVIDUAL else "known" for label in truth]
