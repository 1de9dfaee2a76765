"""OOF retrieval problems: simulated unseen animals for tuning the new_individual threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from whale_reid.answers.ensemble import hide_individuals


def test_hide_individuals_reaches_the_new_share_by_whole_individuals():
    query = pd.Series(["a", "a", "b", "c", "d", "e", "e", "e", "f", "z"])  # z is unseen already
    gallery = pd.Series(["a", "b", "b", "c", "d", "e", "f", "g"])
    keep = hide_individuals(query, gallery, new_share=0.5, seed=3)
    hidden = set(gallery[~keep])
    unseen = ~query.isin(set(gallery[keep]))
    assert unseen.mean() >= 0.5 and "g" not in hidden  # only the queries' individuals are hidden
    assert all((gallery[gallery == h].index.isin(gallery[~keep].index)).all() for h in hidden)  # whole individuals
    assert unseen.sum() < 5 + query.value_counts().max()  # stops as soon as the target is reached
    np.testing.assert_array_equal(keep, hide_individuals(query, gallery, new_share=0.5, seed=3))
    assert hide_individuals(query, gallery, new_share=0.0, seed=3).all()
