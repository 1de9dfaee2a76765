"""Profiles are `dvc exp run -S` overrides: DVC applies them as the overlay means, and `--temp` leaves git clean."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from dvc.utils.hydra import apply_overrides

from tests.conftest import REPO_ROOT, error_lines, make_pipeline_repo, run_in
from whale_reid.common.params import load_params, read_yaml
from whale_reid.common.profiles import hydra_value, profile_overrides


def overlay(base: dict, profile: dict) -> dict:
    """The oracle: mappings merge key by key, lists and scalars replace."""
    merged = dict(base)
    for key, value in profile.items():
        both_maps = isinstance(merged.get(key), dict) and isinstance(value, dict)
        merged[key] = overlay(merged[key], value) if both_maps else value
    return merged


@pytest.mark.parametrize("chain", [["tiny"], ["kaggle"], ["kaggle", "kaggle-24gb"], ["own-catalogue"]])
def test_dvc_applies_a_profile_as_the_overlay_of_params_yaml(tmp_path, chain):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params)
    apply_overrides(params, profile_overrides(chain[-1]))  # the code `dvc exp run -S` runs
    expected = read_yaml(REPO_ROOT / "params.yaml")
    for name in chain:  # a profile that `extends` another lies over it
        profile = read_yaml(REPO_ROOT / "profiles" / f"{name}.yaml")
        assert profile.pop("extends", None) == (chain[chain.index(name) - 1] if chain.index(name) else None)
        expected = overlay(expected, profile)
    assert load_params(params) == expected  # and the result passes the strict params check


def test_values_keep_their_type_through_the_override_grammar(tmp_path):
    values = {"device": "0", "none": None, "tiny": 1e-06, "flag": False, "path": "data/it's here\\x\\",
              "win": "C:\\\\a\\b'", "zoo": [{"name": "a b", "m": 0.3}, {}], "sizes": [160, 224],
              "word": "null"}  # fmt: skip
    params = tmp_path / "params.yaml"
    params.write_text("a: {}\n")
    apply_overrides(params, [f"++a.{key}={hydra_value(value)}" for key, value in values.items()])
    assert read_yaml(params)["a"] == values


def test_an_unknown_profile_is_one_line_naming_the_known_ones():
    proc = run_in(REPO_ROOT, sys.executable, "-m", "pipelines.profile", "kagle")
    assert proc.returncode == 2
    known = ", ".join(sorted(path.stem for path in (REPO_ROOT / "profiles").glob("*.yaml")))  # kaggle, tiny, ...
    assert error_lines(proc.stderr) == [f"error: unknown profile 'kagle' (known: {known})"]


@pytest.mark.pipeline  # a repository copy and one `dvc exp run --temp` of the demo stage
def test_a_temp_profile_run_is_recorded_with_its_params_and_leaves_git_clean(tmp_path):
    repo = make_pipeline_repo(tmp_path / "repo", profile=None)
    proc = run_in(repo, sys.executable, "-m", "pipelines.profile", "tiny", "--temp", "demo_data@demo")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert run_in(repo, "git", "status", "--porcelain").stdout == ""  # params.yaml untouched, nothing new
    shown = json.loads(run_in(repo, "dvc", "exp", "show", "--json").stdout)
    experiments = [exp for row in shown for exp in (row.get("experiments") or [])]
    assert len(experiments) == 1
    run = experiments[0]["revs"][0]["data"]["params"]["params.yaml"]["data"]["data"]
    assert run["demo"]["seed"] == 11 and run["demo"]["n_species"] == 3  # the profile's values, not the defaults
    assert read_yaml(repo / "params.yaml")["data"]["demo"]["seed"] == 7  # the workspace keeps the defaults
