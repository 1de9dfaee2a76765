"""The repository's own import graph, read from the source (no module is imported): what the layout tests check.

A module's imports are every `import` / `from … import` statement in it, at the top or inside a function (both
run), except those under `if TYPE_CHECKING:` (never run). `from pkg import name` resolves to the module that
defines `name`: a submodule `pkg.name`, or, following re-exports (`from .x import name` in `pkg/__init__.py`),
the module whose top level binds it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: where each top-level package's source lives
SOURCE_ROOTS = (ROOT / "src", *sorted((ROOT / "packages").glob("*/src")), ROOT)


@functools.cache
def module_file(module: str) -> Path | None:
    """The file of a repository module (`a.b` → `.../a/b.py` or `.../a/b/__init__.py`), None if not ours."""
    parts = module.split(".")
    for root in SOURCE_ROOTS:
        for path in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
            if path.is_file() and ".venv" not in path.parts:
                return path
    return None


def _module_name(path: Path) -> str:
    for root in SOURCE_ROOTS:
        if path.is_relative_to(root):
            rel = path.relative_to(root).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            return ".".join(parts)
    raise ValueError(path)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST, type_only: bool):
    """Import statements that run (and, with `type_only`, those under `if TYPE_CHECKING:` too)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


@functools.cache
def defining_module(module: str, name: str) -> str:
    """The module whose code binds `name` when `from module import name` runs (ours only)."""
    if module_file(f"{module}.{name}"):
        return f"{module}.{name}"
    path = module_file(module)
    if path is None:
        return module
    for node in _tree(path).body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name and alias.name != "*":
                    source = _absolute(node, path)
                    if module_file(source) or module_file(f"{source}.{alias.name}"):
                        return defining_module(source, alias.name)
    return module


def imported_modules(path: Path, type_only: bool = False) -> set[str]:
    """The repository modules `path` imports directly (names resolved to their defining modules)."""
    found: set[str] = set()
    for node in _statements(_tree(path), type_only):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if module_file(alias.name))
            continue
        source = _absolute(node, path)
        if not module_file(source):
            continue
        for alias in node.names:
            found.add(source if alias.name == "*" else defining_module(source, alias.name))
    return found


def closure(path: Path) -> set[Path]:
    """Every repository file that running `path` can import, `path` included."""
    seen, todo = {path}, [path]
    while todo:
        for module in imported_modules(todo.pop()):
            file = module_file(module)
            if file is not None and file not in seen:
                seen.add(file)
                todo.append(file)
    return seen
