"""dvc.yaml is the one place a stage's paths are named: each script takes them as arguments from its `cmd:`,
every path argument is a dependency or output of that stage, and no script spells a path of its own."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
#: path arguments that are neither dependencies nor outputs, and why
SCRATCH = {"runs/detector": "the YOLO dataset and ultralytics' run folder: git-ignored scratch, not tracked by DVC"}
#: arguments that are not paths
NOT_PATHS = {"--model", "--round"}
#: a path in a project folder: what only dvc.yaml may spell (the names of files inside a folder a stage is
#: given, such as `train.csv` in the prepared folder, are that folder's layout; `data` alone is a params section)
PATH_LIKE = re.compile(r"^(data|models|outputs|metrics|embeddings|features|reports|runs)/|^(optuna|mlflow)\.db$")


def _spec(stage: str) -> dict:
    spec = STAGES[stage]
    return spec.get("do", spec)


def _declared(spec: dict) -> set[str]:
    """The stage's deps, outs, metrics and plots as written (an entry may be a mapping of one path)."""
    names = set()
    for key in ("deps", "outs", "metrics", "plots"):
        for entry in spec.get(key, []):
            names |= set(entry) if isinstance(entry, dict) else {entry}
    return names


def _cmd_options(spec: dict) -> tuple[str, dict[str, str]]:
    """The module a stage's cmd runs and its `--option value` pairs."""
    words = shlex.split(spec["cmd"])
    assert words[:2] == ["python", "-m"], spec["cmd"]
    options = dict(zip(words[3::2], words[4::2]))
    assert all(o.startswith("--") for o in options) and len(words[3:]) == 2 * len(options), spec["cmd"]
    return words[2], options


def _script_options(module: str) -> set[str]:
    """The options the stage script declares through `stage_paths(__doc__, "name", ..., option=help)`."""
    tree = ast.parse((REPO_ROOT / (module.replace(".", "/") + ".py")).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "stage_paths"]
    assert len(calls) == 1, f"{module}: expected one stage_paths(...) call"
    names = [a.value for a in calls[0].args[1:]] + [k.arg for k in calls[0].keywords]
    return {"--" + name.replace("_", "-") for name in names}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_path_argument_is_a_dependency_or_an_output(stage):
    spec = _spec(stage)
    _, options = _cmd_options(spec)
    declared = _declared(spec)
    stray = {o: v for o, v in options.items() if o not in NOT_PATHS and v not in declared and v not in SCRATCH}
    assert not stray, f"{stage}: path arguments dvc.yaml does not track: {stray}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_script_takes_exactly_the_arguments_its_cmd_gives(stage):
    module, options = _cmd_options(_spec(stage))
    assert _script_options(module) == set(options)


def _path_literals(path: Path) -> list[str]:
    """String constants of a module that look like project paths (docstrings and argument names left out)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n.body[0].value) for n in ast.walk(tree)
               if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
               and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}  # fmt: skip
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "stage_paths":
            skipped |= {id(a) for a in call.args}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in skipped and PATH_LIKE.search(n.value)]  # fmt: skip


@pytest.mark.parametrize("module", sorted(_cmd_options(_spec(s))[0] for s in STAGES))
def test_no_stage_script_names_a_path_of_its_own(module):
    assert _path_literals(REPO_ROOT / (module.replace(".", "/") + ".py")) == []


def test_the_literal_check_finds_a_hard_coded_path(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""Reads data/prepared."""\nOUT = "outputs/submission.csv"\nLOG = "pipelines.x"\n'
        'args = stage_paths(__doc__, "metrics")\nDIR = "data/raw"\n'
    )
    assert _path_literals(probe) == ["outputs/submission.csv", "data/raw"]
