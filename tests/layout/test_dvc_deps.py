"""dvc.yaml's deps cover what each stage's code imports, so editing a module re-runs every stage it can change.

Each stage's command runs a `pipelines/<stage>.py` script; its import closure inside this repository (names
resolved to the modules that define them, `tests/imports.py`) must be covered by the stage's `deps`, each module
by itself or by a folder above it.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.imports import ROOT, closure

SCRIPT = re.compile(r"-m\s+(pipelines\.\w+)")


def stages() -> dict[str, dict]:
    """Every stage of dvc.yaml by name (a `foreach` stage once, by its `do` template)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: stage.get("do", stage) for name, stage in spec.items()}


def gaps(stage: dict) -> list[str]:
    """The repository files the stage's script can import that no dep covers (paths relative to the repo)."""
    script = SCRIPT.search(stage["cmd"])
    assert script, f"no `-m pipelines.<stage>` in {stage['cmd']!r}"
    deps = [ROOT / d for d in stage.get("deps", []) if "${" not in str(d)]
    files = closure(ROOT / (script.group(1).replace(".", "/") + ".py"))
    return sorted(str(f.relative_to(ROOT)) for f in files if not any(f == d or f.is_relative_to(d) for d in deps))


@pytest.mark.parametrize("name", sorted(stages()))
def test_the_stage_deps_cover_its_import_closure(name: str) -> None:
    missing = gaps(stages()[name])
    assert not missing, f"dvc.yaml stage {name!r} imports files its deps do not name: {missing}"


def test_every_stage_script_runs_its_module_of_the_same_name() -> None:
    """The rule a newcomer needs: `pipelines/X.py` → `whale_reid/stages/X.py`, one per stage."""
    for name, stage in stages().items():
        script = SCRIPT.search(stage["cmd"]).group(1)
        assert script == f"pipelines.{name}", f"stage {name!r} runs {script}"
        assert ROOT / "src/whale_reid/stages" / f"{name}.py" in closure(ROOT / f"pipelines/{name}.py"), name
