"""The final ensemble logged to MLflow as a pyfunc model (`log_ensemble_model`, called by the predict stage).

The model is a bundle of exactly the files `whale-reid identify` reads from a pipeline run (params.yaml,
`outputs/selection.json`, `models/gallery/`, the detector or the given boxes file, the selected checkpoints and
the fold summaries that record their digests), laid out as in the repository, and the source file
`mlflow_model_code.py`, which MLflow runs to load it (`whale_reid.identify.mlflow_model.EnsembleModel`). Logging
it needs none of identify's code.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from whale_core import InputError, atomic_path, read_json
from whale_detector import CropConfig
from whale_reid.answers.ensemble import read_selection
from whale_reid.common.params import load_params

INPUT_COLUMN = "photo"
OUTPUT_COLUMNS = ["photo", "rank", "individual_id", "probability", "similarity", "species", "error"]
MODEL_CODE = Path(__file__).with_name("mlflow_model_code.py")  # models-from-code: the model is logged as source


def bundle_files(repo: Path) -> list[Path]:
    """The files identify reads from the pipeline run in `repo`, relative to it (the gallery enrolled later is not)."""
    gallery = read_json(repo / "models" / "gallery" / "gallery.json", "written by the predict stage")
    crop = CropConfig.from_dict(gallery.get("settings", {}).get("crop", load_params(repo / "params.yaml").get("crop")))
    selection = read_selection(repo / "outputs" / "selection.json")
    files = [Path("params.yaml"), Path("outputs/selection.json")]
    files += sorted(p.relative_to(repo) for p in (repo / "models" / "gallery").rglob("*") if p.is_file())
    if crop.box_source == "detector":
        files.append(Path("models/detector/best.pt"))
    elif crop.box_source == "boxes_csv":
        files.append(Path(str(crop.boxes_csv)))  # with `none` every crop is the whole photo: no box file to carry
    for member in selection["members"]:
        fold = Path("models/embedder") / str(member["model"]) / f"fold{int(member['fold'])}"
        files.append(fold / "best.pt")
        if (repo / fold / "fold.json").is_file():  # its digest: the model's identify verifies the checkpoint too
            files.append(fold / "fold.json")
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
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    kinds = {"rank": "long", "probability": "double", "similarity": "double"}
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", INPUT_COLUMN)]),
        outputs=Schema([ColSpec(kinds.get(c, "string"), c) for c in OUTPUT_COLUMNS]),
    )
    with tempfile.TemporaryDirectory(prefix="whale-reid-bundle-") as tmp, warnings.catch_warnings():
        # the signature is given; MLflow colours the warning, so its text does not start the message
        warnings.filterwarnings("ignore", message=".*An input example was not provided")
        bundle = write_bundle(repo, Path(tmp) / "bundle")
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(MODEL_CODE), artifacts={"bundle": str(bundle)}, signature=signature,
            registered_model_name=registered_name, pip_requirements=["whale-reid"],  # runs in the project's env
        )  # fmt: skip
