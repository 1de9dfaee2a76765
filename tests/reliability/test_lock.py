"""constraints.txt pins every dependency the project declares, at versions its own ranges accept.

A dependency added to a pyproject without `make lock` would be resolved afresh on every machine, and a raised
floor would make `make install` fail: both are caught here, before a fresh clone meets them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11, where the pins apply

REPO_ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Version]:
    """The pins that apply to this interpreter (each line `name==version`, optionally `; marker`)."""
    pins = {}
    for number, line in enumerate((REPO_ROOT / "constraints.txt").read_text().splitlines(), 1):
        pin, _, marker = line.split("#", 1)[0].partition(";")
        if pin.strip():
            name, sep, version = pin.strip().partition("==")
            assert sep, f"constraints.txt line {number}: not a `name==version` pin: {line!r}"
            if not marker.strip() or Marker(marker.strip()).evaluate():
                pins[canonicalize_name(name)] = Version(version)
    return pins


def _declared() -> list[tuple[str, Requirement]]:
    found = []
    for pyproject in [REPO_ROOT / "pyproject.toml", *sorted((REPO_ROOT / "packages").glob("*/pyproject.toml"))]:
        project = tomllib.loads(pyproject.read_text())["project"]
        extras = [req for reqs in project.get("optional-dependencies", {}).values() for req in reqs]
        for text in [*project.get("dependencies", []), *extras]:
            requirement = Requirement(text)
            if not canonicalize_name(requirement.name).startswith("whale-"):
                found.append((str(pyproject.relative_to(REPO_ROOT)), requirement))
    return found


def test_every_declared_dependency_is_pinned_within_its_range():
    pins, declared = _pins(), _declared()
    if set(pins) <= {"torch", "torchvision"}:
        pytest.skip("constraints.txt pins the rest for another Python version")
    assert declared, "no dependencies found: the pyproject layout changed"
    for source, requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{source}: {requirement.name} is not pinned in constraints.txt (run `make lock`)"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{source}: {requirement} excludes the pinned {requirement.name}=={pins[name]} (run `make lock`)"
        )


def test_the_torch_pair_is_pinned():
    pins = _pins()
    assert (pins.get("torch"), pins.get("torchvision")) == (Version("2.14.1"), Version("0.29.1"))
