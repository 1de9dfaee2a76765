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
    ("src/whale_reid/stages/predict.py", "write_predict_outputs", "save"): (
        "GalleryIndex.save writes each of its two files with atomic_path"
    ),
    (
        "src/whale_reid/common/tracking.py",
        "log_table",
        "to_csv",
    ): "to_csv() without a path returns text for mlflow.log_text",
    (
        "src/whale_reid/catalogue/versions.py",
        "write_version",
        "save",
    ): "GalleryIndex.save into a temp folder, then renamed",
    ("src/whale_reid/demo/writer.py", "_encode_jpeg", "save"): "encodes into a BytesIO, then atomic_write_bytes",
    (
        "src/whale_reid/common/html.py",
        "jpeg_bytes",
        "save",
    ): "encodes into a BytesIO (a data URI, or atomic_write_bytes)",
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


def raw_writes(path: Path, root: Path = REPO_ROOT) -> list[tuple[str, str, str, int]]:
    """(file relative to `root`, function, call name, line) of each write call not inside `with atomic_path(...)`."""
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
                found.append((str(path.relative_to(root)), function, name, node.lineno))
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
    sample = tmp_path / "probe.py"
    sample.write_text(
        "def bad(frame, p):\n    frame.to_csv(p)\n    with open(p, 'w') as fh:\n        fh.write('x')\n"
        "def good(p, state):\n    with atomic_path(p) as tmp:\n        torch.save(state, tmp)\n"
    )
    found = [(fn, call) for _, fn, call, _ in raw_writes(sample, root=tmp_path)]
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


#: Code that reads files handed over by others (an identify folder, a gallery version, CATALOGUE/CURRENT):
#: module → the functions checked (None: all of it).
UNTRUSTED_NAME_SCOPES = {
    "src/whale_reid/catalogue/enroll.py": None,
    "src/whale_reid/catalogue/run_folder.py": None,
    "src/whale_reid/review/outputs.py": {
        "gallery_locator",
        "original_locator",
        "locate",
    },  # only its gallery-photo lookups
    "src/whale_reid/catalogue/commands.py": None,
    "src/whale_reid/catalogue/audit.py": None,
    "src/whale_reid/catalogue/metadata.py": None,
    "src/whale_reid/catalogue/decisions.py": None,
    "src/whale_reid/catalogue/versions.py": None,
    "src/whale_reid/review/views.py": None,
    "src/whale_reid/review/pages.py": None,
}
#: (file, function, joined expression) → why the name it joins is not data from a file.
JOIN_ALLOWED = {
    ("src/whale_reid/review/outputs.py", "locate", "repo / 'data' / 'crops' / region"): (
        "region is the checkpoint config's extract_region, a Literal['fullbody', 'backfin'] checked on load"
    ),
    ("src/whale_reid/catalogue/run_folder.py", "sibling", "out.parent / f'.{out.name}.{tag}'"): (
        "out is the user's own --out argument; tag is a run id or a fixed word"
    ),
    ("src/whale_reid/catalogue/run_folder.py", "__init__", "Path(out)"): "the user's own --out argument",
    ("src/whale_reid/review/outputs.py", "locate", "Path(image_id)"): (
        "only its suffix changes; inside() checks the name below"
    ),
    (
        "src/whale_reid/catalogue/versions.py",
        "write_version",
        "Path(tempfile.mkdtemp(prefix=f'.{name}.', dir=versions))",
    ): ("mkdtemp's own new folder inside versions/"),
    (
        "src/whale_reid/catalogue/versions.py",
        "enrolled_features_path",
        "version_dir / f'enrolled_features_{region}.npz'",
    ): ("region is a MatchConfig region, a Literal['fullbody', 'backfin'] checked when the settings are read"),
    ("src/whale_reid/catalogue/commands.py", "_cmd", "Path(args.repo)"): "the user's own --repo argument",
    ("src/whale_reid/catalogue/commands.py", "_cmd", "Path(args.out)"): "the user's own export file argument",
    ("src/whale_reid/catalogue/metadata.py", "read_sidecar", "path.parent / row.photo"): (
        "only compared with the resolved paths of the photos identify was given; nothing is opened by it"
    ),
    (
        "src/whale_reid/catalogue/metadata.py",
        "read_sidecar",
        "Path(row.photo)",
    ): "only its name is compared with the photos'",
    ("src/whale_reid/review/views.py", "build_views", "Path(result.photos['path'].iloc[i])"): (
        "a photo identify found itself in the user's own folders (find_photos), not a name read from a file"
    ),
    ("src/whale_reid/review/views.py", "build_views", "crops_dir / region / 'query' / f'{qkey}.jpg'"): (
        "qkey is identify's own photo_key of this run; region the checkpoint config's checked extract_region"
    ),
    ("src/whale_reid/review/views.py", "build_views", "crops_dir / region"): "region: as above",
    ("src/whale_reid/review/views.py", "relative", "Path(os.path.relpath(path, self.review_dir))"): (
        "a reference the page makes to a file of its own run folder (a crop), never opened here"
    ),
}


def _constant_name(node: ast.AST) -> bool:
    """A string literal or an UPPER_CASE module constant: not a name read from a file."""
    if isinstance(node, ast.Constant):
        return True
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return bool(name) and name.isupper()


def unchecked_joins(path: Path, functions: set[str] | None, root: Path = REPO_ROOT) -> list[tuple[str, str, str]]:
    """(file, function, expression) of each `folder / name` or `Path(name)` whose name is not a constant.

    Such names must go through `whale_core.inside(folder, name)` or `safe_name(name)` (which refuse names and
    symlinks that lead out of the folder); what is built inside the arguments of those calls is checked by them.
    """
    found = []

    def visit(node: ast.AST, function: str, guarded: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        call = node.func if isinstance(node, ast.Call) else None
        if call is not None and (getattr(call, "id", "") or getattr(call, "attr", "")) in ("inside", "safe_name"):
            guarded = True
        joined = isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and not _constant_name(node.right)
        built = call is not None and getattr(call, "id", "") == "Path" and any(not _constant_name(a) for a in node.args)
        if (joined or built) and not guarded and (functions is None or function in functions):
            found.append((str(path.relative_to(root)), function, ast.unparse(node)))
        for child in ast.iter_child_nodes(node):
            visit(child, function, guarded)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>", False)
    return found


def test_names_from_files_stay_inside_their_folders():
    joins = [j for rel, functions in UNTRUSTED_NAME_SCOPES.items() for j in unchecked_joins(REPO_ROOT / rel, functions)]
    unexplained = [f"{f} {fn}(): {expr}" for f, fn, expr in joins if (f, fn, expr) not in JOIN_ALLOWED]
    assert not unexplained, "joins of names from files (use whale_core.inside / safe_name):\n" + "\n".join(unexplained)
    stale = set(JOIN_ALLOWED) - set(joins)
    assert not stale, f"allow-list entries that match no code any more: {sorted(stale)}"


def test_the_join_checker_flags_an_unchecked_name(tmp_path):
    sample = tmp_path / "probe.py"
    sample.write_text(
        "def bad(folder, data):\n    return (folder / data['crop']).read_bytes(), Path(data['id'])\n"
        "def good(folder, data):\n    return inside(folder, data['crop']).read_bytes(), folder / 'x' / CONST\n"
    )
    found = [(fn, expr) for _, fn, expr in unchecked_joins(sample, None, root=tmp_path)]
    assert found == [("bad", "folder / data['crop']"), ("bad", "Path(data['id'])")]
