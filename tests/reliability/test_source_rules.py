"""Static rules over the source trees: every file write is atomic, no shell, every torch.load is weights-only.

The AST walk flags a write call unless it sits inside a `with atomic_path(...)` block; what remains
must be on the allow-list below with the reason. A stale allow-list entry fails too, so the list
cannot silently outlive the code it excuses.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TREES = ("pipelines", "src", "packages/core/src", "packages/detector/src", "packages/embedder/src",
         "packages/retrieval/src")  # fmt: skip
WRITE_METHODS = {"write_text", "write_bytes", "to_csv", "to_parquet", "save", "savez", "savez_compressed",
                 "dump", "copyfile", "copy", "copy2", "copytree", "write_index", "symlink_to"}  # fmt: skip
#: (file, enclosing function, call) → why it is not an atomic write and why that is fine.
ALLOWED = {
    ("packages/core/src/whale_core/io.py", "atomic_path", "open"): "the atomic writer itself: fsync of its temp file",
    ("packages/core/src/whale_core/io.py", "atomic_write_csv", "to_csv"): "to_csv() without a path returns text",
    ("pipelines/profile.py", "apply_profile", "dump"): "ruamel dumps into a StringIO, then atomic_write_text",
    ("pipelines/predict.py", "main", "save"): "GalleryIndex.save writes each of its two files with atomic_path",
    ("src/whale_reid/enroll.py", "write_version", "save"): "GalleryIndex.save into a temp folder renamed when complete",
    ("src/whale_reid/demo/writer.py", "_encode_jpeg", "save"): "encodes into a BytesIO, then atomic_write_bytes",
    ("src/whale_reid/html.py", "image_data_uri", "save"): "encodes into a BytesIO for an inline data URI",
}


def _calls_atomic_path(node: ast.With) -> bool:
    for item in node.items:
        for sub in ast.walk(item.context_expr):
            if isinstance(sub, ast.Call):
                func = sub.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name == "atomic_path":
                    return True
    return False


def _open_for_writing(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


def raw_writes(path: Path) -> list[tuple[str, str, str, int]]:
    """(file, function, call name, line) of each write call that is not inside `with atomic_path(...)`."""
    found = []

    def visit(node: ast.AST, function: str, atomic: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.With) and _calls_atomic_path(node):
            atomic = True
        if isinstance(node, ast.Call) and not atomic:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            receiver = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            if name.startswith("copy") and receiver != "shutil":
                pass  # DataFrame.copy(), dict.copy(): not file writes
            elif name in WRITE_METHODS or (name == "open" and _open_for_writing(node)):
                found.append((str(path.relative_to(REPO_ROOT)), function, name, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function, atomic)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>", False)
    return found


def _sources() -> list[Path]:
    return sorted(p for tree in TREES for p in (REPO_ROOT / tree).rglob("*.py"))


def test_every_file_write_is_atomic_or_allow_listed():
    writes = [w for path in _sources() for w in raw_writes(path)]
    unexplained = [f"{f}:{line} {fn}() calls {call}" for f, fn, call, line in writes if (f, fn, call) not in ALLOWED]
    assert not unexplained, "raw writes (use whale_core.atomic_path / atomic_write_*):\n" + "\n".join(unexplained)
    stale = set(ALLOWED) - {(f, fn, call) for f, fn, call, _ in writes}
    assert not stale, f"allow-list entries that match no code any more: {sorted(stale)}"


def test_the_checker_flags_a_raw_write(tmp_path):
    sample = REPO_ROOT / "pipelines" / "_rule_probe_tmp.py"
    source = (
        "def bad(frame, p):\n    frame.to_csv(p)\n    with open(p, 'w') as fh:\n        fh.write('x')\n"
        "def good(p, state):\n    with atomic_path(p) as tmp:\n        torch.save(state, tmp)\n"
    )
    try:
        sample.write_text(source)
        found = [(fn, call) for _, fn, call, _ in raw_writes(sample)]
    finally:
        sample.unlink()
    assert found == [("bad", "to_csv"), ("bad", "open")]


@pytest.mark.parametrize("tree", [*TREES, "benchmarks", "tests"])
def test_no_shell_execution(tree):
    """No `shell=True`, `os.system` or `os.popen`: data-derived strings never reach a shell."""
    offenders = []
    for path in (REPO_ROOT / tree).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            dotted = f"{getattr(func.value, 'id', '')}.{func.attr}" if isinstance(func, ast.Attribute) else ""
            shell = any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                        for k in node.keywords)  # fmt: skip
            if shell or dotted in ("os.system", "os.popen"):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not offenders


def test_every_torch_load_is_weights_only():
    offenders = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                if getattr(node.func.value, "id", "") != "torch":
                    continue
                flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not offenders
