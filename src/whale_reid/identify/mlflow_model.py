"""The final ensemble as an MLflow pyfunc model: photo paths in, each photo's top-5 individuals (+ scores) out.

The model is a bundle of exactly the files `whale-reid identify` reads from a pipeline run (params.yaml,
`outputs/selection.json`, `models/gallery/`, the detector or the given boxes file, the selected checkpoints),
laid out as in the repository, so `load_context` is `load_artefacts(bundle)` and `predict` is
`identify()`: the project's one answer path, not a copy of it. Serve or batch-score it in the project's
environment:

    mlflow models predict -m models:/whale-reid-ensemble/1 -i photos.csv -t csv --env-manager local

with `photos.csv` a column `photo` of photo paths or folders (searched recursively, as identify does).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from whale_core import InputError
from whale_reid.identify.artefacts import load_artefacts
from whale_reid.identify.model_bundle import INPUT_COLUMN, OUTPUT_COLUMNS
from whale_reid.identify.queries import find_photos, identify


def answers_table(matches: pd.DataFrame) -> pd.DataFrame:
    """identify's `matches.csv` rows, narrowed to what a caller of the model needs (rank 0 = an unreadable photo)."""
    table = matches.reindex(columns=OUTPUT_COLUMNS).reset_index(drop=True)
    return table.astype({"rank": "int64"})  # every row has a rank (0 = an error row): the signature's long


def photo_inputs(model_input: Any) -> list[str]:
    """Paths from a DataFrame with a `photo` column (or its first column), a list or one string."""
    if isinstance(model_input, pd.DataFrame):
        column = INPUT_COLUMN if INPUT_COLUMN in model_input.columns else model_input.columns[0]
        return [str(v) for v in model_input[column]]
    if isinstance(model_input, (str, Path)):
        return [str(model_input)]
    return [str(v) for v in model_input]


class EnsembleModel(mlflow.pyfunc.PythonModel):
    """`mlflow.pyfunc` wrapper of `whale_reid.identify.queries` over a bundled pipeline run (artifact `bundle`)."""

    def load_context(self, context: Any) -> None:
        self.artefacts = load_artefacts(Path(context.artifacts["bundle"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        photos = find_photos(photo_inputs(model_input))
        if not photos:
            raise InputError("no photos found in the model input")
        with tempfile.TemporaryDirectory(prefix="whale-reid-model-") as tmp:
            result = identify(self.artefacts, photos, Path(tmp))
        return answers_table(result.matches)
