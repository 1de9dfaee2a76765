"""One fold of one model to train: where it reads and writes (`TrainingPaths`) and what it trains on (`FoldJob`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from whale_embedder import EmbedderConfig


@dataclass(frozen=True)
class TrainingPaths:
    """Where one model's training reads and writes (each named by the stage's `cmd:` in dvc.yaml).

    Attributes:
        prepared: the prepared tables (`train.csv`, `test.csv`).
        crops: the crop stage's folder (`<region>/<split>/<image>.jpg`, `boxes.csv`).
        model_dir: `fold<k>/{best,last}.pt`, the run records and `runs.json`.
        embeddings: `fold<k>/{train,test}.npz` and `oof.npz`.
        metrics: the model's DVC metrics file (CV MAP@5: mean, std, per fold).
        curves: its validated epochs, a row per fold and epoch (a DVC plot).
    """

    prepared: Path
    crops: Path
    model_dir: Path
    embeddings: Path
    metrics: Path
    curves: Path

    def data_digest(self) -> str:
        """A hash of what the folds are trained on: the prepared tables and the crop boxes.

        Part of each fold's digest, so a finished fold is skipped only when params *and* data are unchanged
        (the outputs persist across `dvc repro`, so a digest of params alone would keep stale embeddings).
        """
        sha = hashlib.sha256()
        for path in (self.prepared / "train.csv", self.prepared / "test.csv", self.crops / "boxes.csv"):
            sha.update(path.read_bytes() if path.is_file() else b"-")
        return sha.hexdigest()[:12]


@dataclass(frozen=True)
class FoldJob:
    """One fold of one model to train: what it trains on, where it writes, and what its runs are tagged with.

    Attributes:
        cfg: the model's merged embedder config.
        name: the model's name (an `embedder.zoo` entry).
        fold: the fold held out for validation.
        train: the train crop table (every fold; `fold` says which rows validate).
        test: the test crop table (embedded by the fold's best checkpoint).
        digest: digest of the params that decide the weights (`EmbedderConfig.result_dict`: not workers, device,
            eval batch or validation cadence) and the data; a fold finished or started with another one is redone.
        paths: the model's folders.
        tags: MLflow tags of the fold run (empty on helper ranks, which do not log).
        source: the table the photos come from (named in the MLflow datasets).
    """

    cfg: EmbedderConfig
    name: str
    fold: int
    train: pd.DataFrame
    test: pd.DataFrame
    digest: str
    paths: TrainingPaths
    tags: dict[str, str]
    source: str

    @property
    def fold_dir(self) -> Path:
        return self.paths.model_dir / f"fold{self.fold}"

    @property
    def emb_dir(self) -> Path:
        return self.paths.embeddings / f"fold{self.fold}"

    @property
    def is_val(self) -> pd.Series:
        return self.train["fold"].astype(int) == self.fold
