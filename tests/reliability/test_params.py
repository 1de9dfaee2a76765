"""Params gaps: each mistake is one line naming the key (exit 2), never a traceback or a silent default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.pipelines.conftest import run_stage
from whale_core import ConfigError
from whale_detector import CropConfig, DetectorConfig
from whale_reid.common.params import SECTIONS, section_class

EMBEDDER = {"models": ["demo"], "folds": [0], "common": {"epochs": 1}, "zoo": {"demo": {}}}
CASES = {
    "threshold_step 0": (
        "tune",
        {"tune": {"search": {"threshold_step": 0}}},
        "tune.search.threshold_step: 0.0 must be in (0, 1]",
    ),
    "folds as a string": (
        "train_embedder",
        {"embedder": {**EMBEDDER, "folds": "0,1"}},
        "embedder.folds: expected a list, got '0,1'",
    ),
    "fold instead of folds": (
        "train_embedder",
        {"embedder": {**EMBEDDER, "fold": [0]}},
        "unknown key 'fold' in params section 'embedder'",
    ),
    "data.raw_dirr": ("prepare", {"data": {"raw_dirr": "raw"}}, "unknown key 'raw_dirr' in params section 'data'"),
    "unknown section": ("prepare", {"data": {"raw_dir": "raw"}, "trackng": {}}, "unknown section 'trackng'"),
    "typo in common": (
        "train_embedder",
        {"embedder": {**EMBEDDER, "common": {"lr_typo": 0.1}}},
        "unknown key 'lr_typo' in params section 'embedder.common'",
    ),
    "no selection.json": ("tune", {}, "outputs/selection.json: not found (written by the select stage)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_params_mistakes_are_one_line_naming_the_key(tmp_path: Path, case: str) -> None:
    stage, params, message = CASES[case]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage(stage, tmp_path, item={"model": "demo"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and last.startswith("error: ") and message in last, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "mlflow.db") == ["params.yaml"]


@pytest.mark.parametrize("bad", [[["batch", 4]], "fast", 3])
def test_a_section_that_is_not_a_mapping_is_named(bad) -> None:
    with pytest.raises(ConfigError, match=r"^params section 'crop': expected a mapping of keys"):
        CropConfig.from_dict(bad)


def test_every_section_of_params_yaml_is_known_and_checked_by_its_class() -> None:
    repo_params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    assert set(repo_params) <= set(SECTIONS)
    for name in SECTIONS:  # one name per section: the registry's is the class's own
        assert name == section_class(name).SECTION


@pytest.mark.parametrize(
    ("section", "typo", "message"),
    [
        ("tune", {"serach": {}}, "unknown key 'serach' in params section 'tune'"),
        ("match", {"anything": 1}, "unknown key 'anything' in params section 'match'"),
        ("crop", {"conf_treshold": 0.2}, "unknown key 'conf_treshold' in params section 'crop'"),
        ("pseudo", {"min_scor": 0.9}, "unknown key 'min_scor' in params section 'pseudo'"),
        ("predict", {"knn": {"backend": "nope"}}, "predict.knn.backend"),
    ],
)
def test_a_typo_in_any_section_stops_the_first_stage(tmp_path: Path, section: str, typo: dict, message: str) -> None:
    """The first stage of the pipeline (`prepare`) refuses a typo in a section only later stages read, before
    any work: the typo is named, nothing is written."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"raw_dir": "raw"}, section: typo}))
    proc = run_stage("prepare", tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in proc.stderr.strip().splitlines()[-1], proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CropConfig(conf_threshold=2.0), "crop.conf_threshold: 2.0 must be in [0, 1]"),
        (lambda: CropConfig.from_dict({"box_source": "boxes_csv"}), "crop.box_source: 'boxes_csv' needs boxes_csv"),
        (lambda: DetectorConfig.from_dict({"val_fraction": 1.5}), "detector.val_fraction: 1.5 must be in (0, 1)"),
    ],
)
def test_detector_configs_refuse_bad_values_with_the_one_error_type(make, message) -> None:
    with pytest.raises(ConfigError) as caught:
        make()
    assert message in str(caught.value) and "\n" not in str(caught.value)
