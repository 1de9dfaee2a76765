"""The final ensemble as an MLflow pyfunc model: photo paths in, each photo's top-5 individuals (+ scores) out.

The model is a bundle of exactly the files `whale-reid identify` reads from a pipeline run (params.yaml,
`outputs/selection.json`, `models/gallery/`, the detector or the given boxes file, the selected checkpoints),
laid out as in the repository, so `load_context` is `cli.load_artefacts(bundle)` and `predict` is
`identify()`: the project's one answer path, not a copy of it. Serve or batch-score it in the project's
environment:

    mlflow models predict -m models:/whale-reid-ensemble/1 -i photos.csv -t csv --env-manager local

with `photos.csv` a column `photo` of photo paths or folders (searched recursively, as identify does).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from whale_core import InputError, atomic_path

INPUT_COLUMN = "photo"
OUTPUT_COLUMNS = ["photo", "rank", "individual_id", "probability", "similarity", "species", "error"]
MODEL_CODE = Path(__file__).with_name("mlflow_model_code.py")  # models-from-code: the model is logged as source


def bundle_files(repo: Path) -> list[Path]:
    """The files identify reads from the pipeline run in `repo`, relative to it (the gallery enrolled later is not)."""
    from whale_detector import CropConfig
    from whale_reid.answers.ensemble import read_selection
    from whale_reid.cli import read_params

    params = read_params(repo)
    crop = CropConfig.from_dict(params.get("crop"))
    selection = read_selection(repo / "outputs" / "selection.json")
    files = [Path("params.yaml"), Path("outputs/selection.json")]
    files += sorted(p.relative_to(repo) for p in (repo / "models" / "gallery").rglob("*") if p.is_file())
    files.append(Path("models/detector/best.pt") if crop.box_source == "detector" else Path(str(crop.boxes_csv)))
    for member in selection["members"]:
        files.append(Path("models/embedder") / str(member["model"]) / f"fold{int(member['fold'])}" / "best.pt")
    missing = [str(f) for f in files if not (repo / f).is_file()]
    if missing:
        raise InputError(f"cannot bundle the ensemble: {', '.join(missing)} missing in {repo}")
    return files


def write_bundle(repo: Path, dest: Path) -> Path:
    """Copy `bundle_files(repo)` into `dest` with the same layout; returns `dest`."""
    for rel in bundle_files(repo):
        with atomic_path(dest / rel) as tmp:
            shutil.copyfile(repo / rel, tmp)
    return dest


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
        from whale_reid.cli import load_artefacts

        self.artefacts = load_artefacts(Path(context.artifacts["bundle"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from whale_reid.identify.queries import find_photos, identify

        photos = find_photos(photo_inputs(model_input))
        if not photos:
            raise InputError("no photos found in the model input")
        with tempfile.TemporaryDirectory(prefix="whale-reid-model-") as tmp:
            result = identify(self.artefacts, photos, Path(tmp))
        return answers_table(result.matches)


def model_description(members: pd.DataFrame, final: dict[str, float], threshold: float, scale: str) -> str:
    """The registered model's description as MLflow shows it (Markdown): inputs, outputs, CV and OOF scores."""
    cv = ", ".join(f"{m}/fold{f} {float(s):.4f}" for m, f, s in zip(members["model"], members["fold"],
                                                                     members["cv_map5"]))  # fmt: skip
    scores = [f"- **OOF MAP@5** {final['oof_map5']:.4f}: the ensemble's answers on photos held out of training, "
              "which the threshold was tuned on"] if "oof_map5" in final else []  # fmt: skip
    if "test_map5" in final:
        scores.append(f"- **test MAP@5** {final['test_map5']:.4f} (the demo's hidden truth)")
    return "\n".join([
        "Photo-identification of whales and dolphins: the pipeline's ensemble behind `whale-reid identify`.",
        "",
        f"**Input**: a table with a column `{INPUT_COLUMN}`: photo paths or folders (searched recursively).",
        "",
        f"**Output**: five rows per photo, best first: {', '.join(f'`{c}`' for c in OUTPUT_COLUMNS)}; "
        f"`individual_id` is `new_individual` where the best {'P(same)' if scale == 'probability' else scale} is "
        f"below the threshold {threshold:.2f}; "
        "rank 0 with `error` for an unreadable photo.",
        "",
        f"- **CV MAP@5** per member (each fold's model on the photos it did not train on): {cv}",
        *scores,
    ])  # fmt: skip


def log_ensemble_model(repo: Path, registered_name: str | None, name: str = "ensemble") -> Any:
    """Log the bundle of `repo` as a pyfunc model of the active run (and register it as `registered_name`)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    kinds = {"rank": "long", "probability": "double", "similarity": "double"}
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", INPUT_COLUMN)]),
        outputs=Schema([ColSpec(kinds.get(c, "string"), c) for c in OUTPUT_COLUMNS]),
    )
    with tempfile.TemporaryDirectory(prefix="whale-reid-bundle-") as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="An input example was not provided")  # the signature is given
        bundle = write_bundle(repo, Path(tmp) / "bundle")
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(MODEL_CODE), artifacts={"bundle": str(bundle)}, signature=signature,
            registered_model_name=registered_name, pip_requirements=["whale-reid"],  # runs in the project's env
        )  # fmt: skip
