"""Reading params.yaml: one function for the stage scripts and the `whale-reid` command alike.

Strict from the top: a section not in `SECTIONS` is refused by name (a typo such as `trackng:` would
otherwise be ignored and its stage run on defaults), and every section present is checked by its Config class
whichever stage reads the file, so a typo inside `tune:` fails within seconds of the first stage, not after
training.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from whale_core import REGIONS, Config, ConfigError, InputError

PARAMS_FILE = "params.yaml"
#: Every section params.yaml may have and the Config class that checks it ("module:Class"). The classes are
#: imported only when a params file is checked, so importing this module stays free of torch and mlflow. Add a
#: stage's section here; its class's `SECTION` is the same name.
SECTIONS = {
    "data": "whale_reid.common.params:DataParams",
    "prepare": "whale_reid.dataset.folds:PrepareConfig",
    "detector": "whale_detector.config:DetectorConfig",
    "crop": "whale_detector.config:CropConfig",
    "embedder": "whale_reid.common.params:EmbedderParams",
    "select": "whale_reid.stages.select:SelectConfig",
    "tune": "whale_reid.stages.tune:TuneStageConfig",
    "match": "whale_reid.answers.verification:MatchConfig",
    "predict": "whale_reid.stages.predict:PredictConfig",
    "pseudo": "whale_reid.stages.pseudo_round:PseudoConfig",
    "tracking": "whale_reid.common.tracking:TrackingConfig",
}
KNOWN_SECTIONS = tuple(SECTIONS)


def section_class(name: str) -> type[Config]:
    """The Config class of params section `name` (imported now)."""
    module, cls = SECTIONS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def read_yaml(path: Path) -> Any:
    """A YAML file as plain data, read as DVC reads params files (YAML 1.2: `1e-4` is a number, `no` a string).

    Raises:
        InputError: the file is not valid YAML (the parser's first line says where).
    """
    try:
        return YAML(typ="safe", pure=True).load(Path(path).read_text(encoding="utf-8"))
    except YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None


#: Where the crop stage's boxes come from (`whale_detector.CropConfig.box_source`).
BOX_SOURCES = ("detector", "boxes_csv", "none")
#: How `data.raw_dir` is laid out (`whale_reid.stages.prepare.detect_layout` says how `auto` decides).
LAYOUTS = ("auto", "kaggle", "folders", "csv")


@dataclasses.dataclass(frozen=True)
class DataParams(Config):
    """params.yaml `data`: the photos' folder and its layout, the demo renderer's section (`DemoConfig` checks
    it) and `demo_stages` (the `demo_data@<name>` stages DVC runs: `[demo]`, or `[]` when `raw_dir` is real data).

    Attributes:
        layout: `kaggle` (train.csv, train_images/, test_images/), `folders` (a folder per individual, or per
            species then individual), `csv` (the catalogue CSV `catalogue_csv`), or `auto`.
        catalogue_csv: the catalogue CSV's path inside `raw_dir` (photo paths in it are relative to its folder).
    """

    SECTION = "data"
    raw_dir: str = "data/raw"
    layout: str = "auto"
    catalogue_csv: str = "catalogue.csv"
    demo_stages: tuple[str, ...] = ()
    demo: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layout not in LAYOUTS:
            raise ConfigError(f"data.layout: {self.layout!r} is not one of {', '.join(LAYOUTS)}")


@dataclasses.dataclass(frozen=True)
class EmbedderParams(Config):
    """params.yaml `embedder`'s own level: the models (a DVC matrix), the CV folds, `common` and `zoo.<model>`.

    `common` and each `zoo` entry are `whale_embedder.EmbedderConfig` sections, checked by the stage.
    `extra_regions`: crop regions each fold's best checkpoint also embeds (`<split>_<region>.npz`), for
    `tune.region_fusion`.
    """

    SECTION = "embedder"
    RANGES = {"folds": ">= 0"}  # fold numbers (train_embedder refuses one that has no photos in the prepared table)
    models: tuple[str, ...] = ("demo",)
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    common: dict[str, Any] = dataclasses.field(default_factory=dict)
    zoo: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra_regions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.folds or len(set(self.folds)) != len(self.folds):
            raise ConfigError(f"embedder.folds: {list(self.folds)} must be distinct fold numbers ≥ 0, at least one")
        unknown = [r for r in self.extra_regions if r not in REGIONS]
        if unknown:
            raise ConfigError(f"embedder.extra_regions: {unknown} — choose from {list(REGIONS)}")

    def model_config(self, name: str) -> Any:
        """`whale_embedder.EmbedderConfig` of model `name`: `common` overridden by `zoo.<name>` (nested sections
        merged key by key). An unknown, mistyped or out-of-range key of `common` is named there (`embedder.common`),
        not in the zoo entry.

        Raises:
            InputError: `name` is not in `zoo`, or the merged section is not a valid `EmbedderConfig`.
        """
        from whale_embedder import EmbedderConfig

        if name not in self.zoo:
            raise InputError(f"params embedder.zoo has no model '{name}' (known: {', '.join(sorted(self.zoo))})")
        try:
            EmbedderConfig.from_dict(dict(self.common), section="embedder.common")
        except ConfigError as err:  # a key of common itself (unknown, mistyped, out of range) is named there; a
            if "embedder.common" in str(err):  # check of several keys may pass once the zoo entry is merged
                raise
        merged = dict(self.common)
        for key, value in (self.zoo[name] or {}).items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
        return EmbedderConfig.from_dict(merged, section=f"embedder.zoo.{name}")


def box_knobs(box_source: str, boxes_csv: str | None) -> dict[str, Any]:
    """The values of the two `crop` knobs DVC reads that `crop.box_source` implies: `detector_stages` (the
    `train_detector@<name>` stages) and `box_input` (what the crop stage depends on). dvc.yaml cannot derive
    them (its templates do not branch on a value), so params.yaml states them and `check_box_knobs` compares."""
    if box_source == "detector":
        return {"detector_stages": ["yolo"], "box_input": "models/detector"}
    if box_source == "boxes_csv":
        return {"detector_stages": [], "box_input": boxes_csv}
    return {"detector_stages": [], "box_input": "data/prepared"}  # none: nothing beyond the photos


def check_box_knobs(crop: dict[str, Any] | None, source: str = PARAMS_FILE) -> None:
    """Refuse a `crop` section whose DVC knobs contradict `box_source`, before any stage does work: otherwise
    setting `box_source: boxes_csv` (or `none`) alone would still train the detector, and fail only at `crop`.

    Raises:
        ConfigError: one line naming the keys and the values that fix it.
    """
    crop = crop or {}
    box_source = crop.get("box_source", "detector")
    if box_source not in BOX_SOURCES:
        raise ConfigError(f"{source}: crop.box_source {box_source!r} is not one of {', '.join(BOX_SOURCES)}")
    if box_source == "boxes_csv" and not crop.get("boxes_csv"):
        raise ConfigError(f"{source}: crop.box_source: boxes_csv needs crop.boxes_csv: <the boxes file>")
    wanted = box_knobs(box_source, crop.get("boxes_csv"))
    given = {
        "detector_stages": list(crop.get("detector_stages", ["yolo"])),
        "box_input": crop.get("box_input", "models/detector"),
    }
    stages_agree = bool(given["detector_stages"]) == bool(wanted["detector_stages"])  # any stage name will do
    if not stages_agree or given["box_input"] != wanted["box_input"]:
        fix = ", ".join(f"crop.{key}: {value}" for key, value in wanted.items())
        raise ConfigError(
            f"{source}: crop.box_source: {box_source} needs {fix} (found "
            + ", ".join(f"crop.{key}: {value}" for key, value in given.items())
            + "; DVC reads those two to decide which stages run)"
        )


def check_params(params: dict[str, Any], source: str = PARAMS_FILE) -> None:
    """Refuse unknown sections, then check every section present with its Config class (unknown keys, types,
    ranges: the first problem named by section and key), and `crop` knobs that contradict `crop.box_source`
    (`check_box_knobs`). Every stage calls it when it starts, so a typo in any section fails before any work.

    Raises:
        ConfigError: one line naming the section or key.
    """
    unknown = [name for name in params if name not in SECTIONS]
    if unknown:
        raise ConfigError(f"{source}: unknown section '{unknown[0]}' (known sections: {', '.join(SECTIONS)})")
    check_box_knobs(params.get("crop"), source)  # first: it names the knobs DVC's graph reads
    for name in SECTIONS:
        if name in params:
            section_class(name).from_dict(params[name])


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml (relative to the working directory, as DVC runs stages from the repo root).

    Raises:
        InputError: a missing or unreadable file, or one that `check_params` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: params file not found (run stages from the repository root)")
    params = read_yaml(path) or {}
    if not isinstance(params, dict):
        raise InputError(f"{path}: expected a mapping of sections at the top level")
    check_params(params, str(path))
    return params
