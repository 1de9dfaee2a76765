"""Pseudo-label picks: exactly the confident, not-new answers, labelled with the individual's species."""

from __future__ import annotations

import pandas as pd
import pytest

from whale_core import ConfigError, InputError
from whale_reid.stages.pseudo_round import PseudoConfig, select_confident

TRAIN = pd.DataFrame({"image": ["t1", "t2", "t3"], "individual_id": ["a", "a", "b"],
                      "species": ["beluga", "beluga", "killer_whale"]})  # fmt: skip


def _answers() -> pd.DataFrame:
    return pd.DataFrame({
        "image": ["q1", "q2", "q3", "q4", "q5"],
        "answer": ["a", "b", "new_individual", "b", "a"],
        "candidate": ["a", "b", "a", "b", "a"],
        "score": [0.95, 0.97, 0.99, 0.85, 0.92],
        "margin": [0.5, 0.05, 0.6, 0.4, 0.1],
    })  # fmt: skip


def test_only_confident_known_answers_are_picked():
    picks = select_confident(_answers(), TRAIN, PseudoConfig(min_score=0.9, min_margin=0.1), 1)
    assert picks["image"].tolist() == ["q1", "q5"]  # q2: margin, q3: new_individual, q4: score
    assert picks["individual_id"].tolist() == ["a", "a"] and picks["species"].tolist() == ["beluga", "beluga"]
    assert (picks["source"] == "pseudo_round1").all()
    assert select_confident(_answers(), TRAIN, PseudoConfig(min_score=0.0, min_margin=0.0), 2)["image"].tolist() == [
        "q1", "q2", "q4", "q5"]  # fmt: skip


def test_bad_inputs_are_named():
    with pytest.raises(InputError, match="margin"):
        select_confident(_answers().drop(columns="margin"), TRAIN, PseudoConfig(), 1)
    with pytest.raises(ConfigError, match="pseudo"):
        PseudoConfig.from_dict({"round_stages": [1], "min_scor": 0.5})
    with pytest.raises(ConfigError, match="round_stages"):
        PseudoConfig(round_stages=(0,))
