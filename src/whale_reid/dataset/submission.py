"""Kaggle submission: build it from answers and check it before anything is written."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from whale_core import InputError


def make_submission(images: Sequence[str], answers: Sequence[Sequence[str]]) -> pd.DataFrame:
    """`image,predictions` rows (five space-separated ids), validated.

    Raises:
        InputError: a test image missing or repeated, or a row without five distinct non-empty ids.
    """
    images = [str(i) for i in images]
    if len(images) != len(answers):
        raise InputError(f"submission: {len(answers)} answers for {len(images)} test images")
    if len(set(images)) != len(images):
        raise InputError("submission: a test image appears twice")
    for image, ids in zip(images, answers):
        if len(ids) != 5 or len(set(ids)) != 5 or any(not i or " " in i for i in ids):
            raise InputError(f"submission: image {image!r} needs five distinct ids, got {list(ids)}")
    return pd.DataFrame({"image": images, "predictions": [" ".join(ids) for ids in answers]})
