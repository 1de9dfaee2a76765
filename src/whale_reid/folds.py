"""Cross-validation folds stratified by individual, with the long tail handled on purpose.

Each individual's photos are shuffled (seeded) and dealt round-robin over the folds, starting at the
fold that currently holds the fewest photos. So an individual with ≥ K photos appears in every fold,
one with n < K photos in n different folds, and a singleton in exactly one fold — when that fold is
validated, the singleton is absent from training and counts as `new_individual`, which is the same
situation as an unseen animal at test time. This is what `StratifiedKFold` does for frequent ids,
without its warning and arbitrary handling of classes smaller than K.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from whale_core import Config, ConfigError


@dataclass(frozen=True)
class PrepareConfig(Config):
    """params.yaml `prepare`."""

    SECTION = "prepare"
    n_folds: int = 5
    seed: int = 42

    def __post_init__(self) -> None:
        if self.n_folds < 2:
            raise ConfigError(f"prepare.n_folds: need at least 2 folds, got {self.n_folds}")


def assign_folds(labels: Sequence[str], n_folds: int, seed: int) -> np.ndarray:
    """Fold index (0..n_folds-1) for each row, stratified by label as described in the module doc.

    Deterministic for (labels, n_folds, seed); independent of row order only up to the shuffle.
    """
    labels = np.asarray(labels, dtype=str)
    rng = np.random.default_rng(seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    fold_sizes = np.zeros(n_folds, dtype=np.int64)
    unique, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    # Big individuals first so the small ones fill the gaps; a seeded tie-break among equal counts.
    order = np.lexsort((rng.permutation(len(unique)), -counts))
    for label_index in order:
        rows = rng.permutation(np.flatnonzero(inverse == label_index))
        start = int(np.argmin(fold_sizes))
        assigned = (start + np.arange(len(rows))) % n_folds
        folds[rows] = assigned
        np.add.at(fold_sizes, assigned, 1)
    return folds
