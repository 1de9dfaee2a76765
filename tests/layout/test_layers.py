"""The import drawing of `whale_reid`: no circle between modules, no arrow from a lower layer to a higher one.

Type-only imports (`if TYPE_CHECKING:`) count: a reader follows them as much as the others.
"""

from __future__ import annotations

import graphlib

from tests.imports import ROOT, imported_modules, module_file

#: sub-packages from the bottom up; a module may import its own layer's and the layers below
LAYERS = (
    ("common",),
    ("dataset", "demo"),
    ("answers", "training"),
    ("catalogue",),
    ("identify",),
    ("review",),
    ("stages", "cli", "mlflow_model"),
)
SRC = ROOT / "src" / "whale_reid"


def modules() -> dict[str, set[str]]:
    """Each whale_reid module → the whale_reid modules it imports (type-only imports included)."""
    graph = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[name] = {m for m in imported_modules(path, type_only=True) if m.startswith("whale_reid.") and m != name}
    return graph


def layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for level, names in enumerate(LAYERS):
        if part in names:
            return level
    raise AssertionError(f"{module}: in no layer of LAYERS (add its sub-package)")


def test_no_import_circle() -> None:
    graphlib.TopologicalSorter(modules()).prepare()  # raises CycleError naming the circle


def test_no_upward_arrow() -> None:
    upward = [f"{a} → {b}" for a, targets in modules().items() if a != "whale_reid"
              for b in targets if layer(b) > layer(a)]  # fmt: skip
    assert not upward, upward


def test_every_module_is_in_a_sub_package() -> None:
    loose = [p.name for p in SRC.glob("*.py") if p.stem not in ("__init__", "cli", "mlflow_model")]
    assert not loose, f"modules outside the sub-packages: {loose}"
    assert module_file("whale_reid.mlflow_model"), "the old import path of registered models is kept"
