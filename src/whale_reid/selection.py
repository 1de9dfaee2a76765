"""Which (model, fold) checkpoints join the ensemble: the `select` stage's rule, as a pure function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from whale_core import Config, ConfigError

SELECTION_COLUMNS = ["model", "fold", "run_id", "cv_map5", "checkpoint"]


@dataclass(frozen=True)
class SelectConfig(Config):
    """params.yaml `select`.

    Attributes:
        rule: `top_n` keeps each model's `top_n` best folds; `delta` keeps every fold whose CV MAP@5 is
            within `delta` of its model's best fold; `all` keeps every fold.
        allow_metrics_fallback: when MLflow does not know the runs `models/embedder/<model>/runs.json` lists (a fresh
            clone that pulled DVC outputs, say), select from those records instead of failing.
    """

    SECTION = "select"
    rule: Literal["top_n", "delta", "all"] = "top_n"
    top_n: int = 3
    delta: float = 0.02
    allow_metrics_fallback: bool = False

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ConfigError(f"select.top_n: must be at least 1, got {self.top_n}")
        if self.delta < 0:
            raise ConfigError(f"select.delta: must be ≥ 0, got {self.delta}")


def select_members(folds: pd.DataFrame, cfg: SelectConfig) -> pd.DataFrame:
    """Apply the rule per model to a table of fold results.

    Args:
        folds: one row per trained fold with columns model, fold, run_id, cv_map5, checkpoint.
        cfg: the rule.

    Returns:
        The kept rows, sorted by model then CV MAP@5 descending then fold (deterministic).
    """
    ordered = folds.sort_values(["model", "cv_map5", "fold"], ascending=[True, False, True], kind="stable")
    if cfg.rule == "all":
        kept = ordered
    elif cfg.rule == "top_n":
        kept = ordered.groupby("model", sort=True).head(cfg.top_n)
    else:
        best = ordered.groupby("model")["cv_map5"].transform("max")
        kept = ordered[ordered["cv_map5"] >= best - cfg.delta - 1e-12]
    return kept.reset_index(drop=True)[SELECTION_COLUMNS]
