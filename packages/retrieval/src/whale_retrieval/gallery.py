"""A saved gallery: embeddings + image ids + individual labels + species + settings, extendable.

Its settings hold what the predict stage answered with (the `AnswerRule`, the kNN and match configs), so
`whale-reid identify` answers through the same rule: `AnswerRule.from_dict(gallery.settings)`.

Saved as `gallery.npz` (arrays, read back with `allow_pickle=False`) and `gallery.json` (settings and the
arrays file's sha256, checked at load: a `gallery.npz` swapped or damaged since is refused), both written
atomically. `add` returns a new index, so new animals can be enrolled without retraining.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from whale_core import InputError, atomic_path, atomic_write_json, file_sha256
from whale_retrieval.rows import check_embeddings

ARRAYS_FILE = "gallery.npz"
SETTINGS_FILE = "gallery.json"


@dataclasses.dataclass(frozen=True)
class GalleryIndex:
    """Gallery rows and the settings to query them.

    Attributes:
        embeddings: float32 [n, d].
        image_ids, labels, species: str arrays [n] (species "" when unknown).
        settings: JSON-able dict; the predict stage saves the `AnswerRule` keys, "knn" (a `KnnConfig`
            dict), "match" (a `MatchConfig` dict) and the ensemble "members".
    """

    embeddings: np.ndarray
    image_ids: np.ndarray
    labels: np.ndarray
    species: np.ndarray
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        image_ids: Sequence[str],
        labels: Sequence[str],
        species: Sequence[str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> GalleryIndex:
        """Validate and wrap: one id, label and species per row; unique image ids; finite, non-zero rows."""
        check_embeddings(embeddings, "gallery")
        n = len(embeddings)
        species = [""] * n if species is None else species
        for name, values in (("image ids", image_ids), ("labels", labels), ("species", species)):
            if len(values) != n:
                raise InputError(f"gallery: {len(values)} {name} for {n} embedding rows")
        ids = np.asarray([str(i) for i in image_ids], dtype=str)
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            first = int(np.flatnonzero(counts > 1)[0])
            raise InputError(f"gallery: image id {str(unique[first])!r} appears {counts[first]} times")
        json.dumps(settings or {}, allow_nan=False)  # refuse what could not be saved
        return cls(
            np.asarray(embeddings, dtype=np.float32),
            ids,
            np.asarray([str(x) for x in labels], dtype=str),
            np.asarray([str(x) for x in species], dtype=str),
            dict(settings or {}),
        )

    def __len__(self) -> int:
        return len(self.embeddings)

    def add(
        self,
        embeddings: np.ndarray,
        image_ids: Sequence[str],
        labels: Sequence[str],
        species: Sequence[str] | None = None,
    ) -> GalleryIndex:
        """A new index with these rows appended (this one is unchanged); image ids must stay unique."""
        if np.ndim(embeddings) != 2 or np.shape(embeddings)[1] != self.embeddings.shape[1]:
            expected = f"[n, {self.embeddings.shape[1]}]"
            raise InputError(f"gallery.add: expected {expected} embeddings, got shape {np.shape(embeddings)}")
        species = [""] * len(embeddings) if species is None else list(species)
        return GalleryIndex.build(
            np.concatenate([self.embeddings, np.asarray(embeddings, dtype=np.float32)]),
            [*self.image_ids.tolist(), *image_ids],
            [*self.labels.tolist(), *labels],
            [*self.species.tolist(), *species],
            self.settings,
        )

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write `gallery.npz` and `gallery.json` into `directory` (created if missing), each atomically."""
        directory = Path(directory)
        with atomic_path(directory / ARRAYS_FILE) as tmp:
            with open(tmp, "wb") as fh:
                arrays = {"image_ids": self.image_ids, "labels": self.labels, "species": self.species}
                np.savez(fh, embeddings=self.embeddings, **arrays)
            digest = file_sha256(tmp)
        record = {"format": 1, "settings": self.settings, "arrays_sha256": digest}
        atomic_write_json(directory / SETTINGS_FILE, record)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> GalleryIndex:
        """Read a gallery written by `save`.

        Raises:
            InputError: missing or unreadable files, or missing arrays, naming the file.
        """
        arrays_path, settings_path = Path(directory) / ARRAYS_FILE, Path(directory) / SETTINGS_FILE
        for path in (arrays_path, settings_path):
            if not path.is_file():
                raise InputError(f"{path}: gallery file not found")
        try:
            record = json.loads(settings_path.read_text(encoding="utf-8"))
            settings = record["settings"]
            if not isinstance(settings, dict):
                raise InputError(f"{settings_path}: 'settings' is a {type(settings).__name__}, not a mapping")
            json.dumps(settings, allow_nan=False)  # a NaN or Infinity written into it by hand
            recorded = record.get("arrays_sha256")  # galleries saved before it was recorded have none
            if recorded is not None and file_sha256(arrays_path) != recorded:
                raise InputError(
                    f"{arrays_path}: not the file saved with {settings_path} (its sha256 differs from the one "
                    "recorded there): restore it, or re-run the stage that wrote the gallery"
                )
            with np.load(arrays_path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in ("embeddings", "image_ids", "labels", "species")}
        except InputError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile) as err:
            raise InputError(f"{directory}: unreadable gallery ({type(err).__name__}: {err})") from None
        return cls.build(arrays["embeddings"], arrays["image_ids"], arrays["labels"], arrays["species"], settings)
