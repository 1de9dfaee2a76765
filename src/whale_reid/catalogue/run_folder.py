"""An identify run's `--out` folder as one unit: written aside, checked, switched into place, under a lock.

`matches.csv`, `query_embeddings.npz`, the review pages (`review.html` + `review/`), the optional `metadata.csv`
and the crops belong together: `enroll` copies the crops, embeddings and metadata of the photos a person
decided on from the page. So a run writes them into a fresh hidden folder beside `--out`
(`.<name>.<run id>.staging`), adds `run.json` (its run id and the sha256 of every file) and only then
switches the folder into place; the npz and the pages carry the same run id. A second writer of the same
`--out` fails at once with one line (the lock `.<name>.lock` beside it is held; see `file_lock` for why it
is there and why it does not stay), and `enroll` checks `run.json` before it reads anything, so a set mixed
by hand or by a crash is refused.

A killed run leaves its staging folder (removed by the next run) and the previous complete folder; a run
killed between the two renames of the switch leaves `.<name>.<run id>.old`, which the next run (or
`enroll`) puts back when `--out` is missing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from whale_core import InputError, atomic_write_json, file_sha256, inside

log = logging.getLogger(__name__)

MANIFEST = "run.json"
#: What an identify folder holds (older runs had no run.json); anything else means it is someone else's folder.
RUN_FILES = {
    "matches.csv", "query_embeddings.npz", "review.html", "review", "crops", MANIFEST, "metadata.csv",
    "query_features_fullbody.npz", "query_features_backfin.npz",
}  # fmt: skip


# Where the lock lives, and why it does not stay: the lock file must outlive the folder it guards (the
# folder is renamed aside and replaced by the staging folder, so a file inside it would be a different file
# after each switch, and before the first run there is no folder at all), and locking the parent folder
# would make runs into unrelated folders of one parent wait for each other. So the lock is the hidden
# `.<name>.lock` beside `--out`, and the last process to hold it removes it: a person finds no zero-byte
# file beside their results. Removing a lock file is safe only by one rule, kept by `file_lock`: whoever
# takes the lock checks afterwards that the path still names the file it locked (else the file was removed
# meanwhile: it takes the new one), and a file is removed only by a process holding it exclusively. So any
# two holders at one time hold the same file, and flock excludes them. A killed holder leaves the file
# (unlocked) until the next run removes it. The catalogue's `models/catalogue/.lock` follows the same rule.


@contextlib.contextmanager
def file_lock(path: Path, *, exclusive: bool, wait: bool, busy: str) -> Iterator[None]:
    """Hold `flock` on `path` (created if missing) for the block; remove the file after if no one holds it.

    Args:
        exclusive: a writer's lock; otherwise shared (readers exclude writers only).
        wait: block until the lock is free; otherwise fail at once.
        busy: the message of the InputError raised when `wait` is false and the lock is held.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
    fd = _take(path, mode, busy)
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
        _remove_if_unused(path)


def _take(path: Path, mode: int, busy: str) -> int:
    """The descriptor of `path` locked in `mode`, once `path` is seen to still name the locked file."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, mode)
            except OSError as err:
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise InputError(busy) from None
                raise
            if _names(path, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed by its last holder between our open and flock: take the file there now


def _remove_if_unused(path: Path) -> None:
    """Remove the lock file unless another process holds it (that one removes it when done)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # removed already, or a folder we may not read
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _names(path, fd):
            path.unlink()
    except OSError:
        pass  # held by another process, or a read-only folder (the file stays, unlocked)
    finally:
        os.close(fd)


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd` (not removed or replaced since it was opened)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def sibling(out: Path, tag: str) -> Path:
    """The hidden `.<name>.<tag>` beside `out` (its lock, staging and set-aside folders)."""
    return out.parent / f".{out.name}.{tag}"


def lock_path(out: Path) -> Path:
    return sibling(out, "lock")


def _siblings(out: Path, kind: str) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.{kind}"), key=lambda p: p.stat().st_mtime)


def recover(out: Path) -> None:
    """Under the lock: put back a folder a killed switch left aside, remove killed runs' staging folders."""
    old = _siblings(out, "old")
    if old and not out.exists():
        os.rename(old.pop(), out)
        log.warning("%s: restored the previous run (a run was killed while switching folders)", out)
    for stale in [*old, *_siblings(out, "staging")]:
        shutil.rmtree(stale, ignore_errors=True)


def check_out_folder(out: Path) -> None:
    """Refuse an `--out` that is a file, or a folder holding anything but an identify run's files."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out must be a folder, and this is a file")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES and not p.name.startswith("."))
        if foreign:
            raise InputError(
                f"{out}: holds files that are not an identify run's ({', '.join(foreign[:3])}); identify replaces "
                "its --out folder as a whole: choose a new or empty folder"
            )


class RunFolder:
    """`with RunFolder(out) as run:` write into `run.path`, then `run.commit()` switches it into place.

    Leaving the block without `commit()` (an error) removes the staging folder; `out` keeps the last run.

    Raises (on entering):
        InputError: `out` is a file or someone else's folder, or another run is writing it now.
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.run_id = uuid.uuid4().hex[:16]
        self.path = sibling(self.out, f"{self.run_id}.staging")
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RunFolder:
        check_out_folder(self.out)
        busy = f"{self.out}: another identify run is writing this folder now; wait for it or choose another --out"
        self._stack.enter_context(file_lock(lock_path(self.out), exclusive=True, wait=False, busy=busy))
        try:
            recover(self.out)
            check_out_folder(self.out)
            self.path.mkdir()
        except BaseException:
            self._stack.close()
            raise
        return self

    def commit(self) -> None:
        """Write `run.json` (run id, sha256 of every file), then switch the staging folder into place."""
        files = sorted(p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith("."))
        manifest = {"run_id": self.run_id, "files": {str(p.relative_to(self.path)): file_sha256(p) for p in files}}
        atomic_write_json(self.path / MANIFEST, manifest)
        aside = sibling(self.out, f"{self.run_id}.old")
        if self.out.exists():
            os.rename(self.out, aside)
        os.rename(self.path, self.out)
        shutil.rmtree(aside, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        try:
            shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self._stack.close()


def verify_run(folder: Path) -> str:
    """The run id of a complete identify folder: every file of its `run.json` present and unchanged.

    Raises:
        InputError: no `run.json` (an unfinished or older run), or files added, missing or changed since
            (two runs mixed): naming the first such file.
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder}: no {MANIFEST}, so not a complete identify run (re-run `whale-reid identify`)")
    try:
        manifest = json.loads(inside(folder, MANIFEST).read_text(encoding="utf-8"))
        run_id, files = str(manifest["run_id"]), dict(manifest["files"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{path}: not a readable run manifest ({err})") from None
    for name, digest in files.items():
        file = inside(folder, name, f"{path}: file")
        if not file.is_file() or file_sha256(file) != digest:
            raise InputError(f"{folder}: {name} is not the file run {run_id} wrote (runs mixed?): re-run identify")
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}
    extra = sorted(present - set(files) - {MANIFEST})
    if extra:
        raise InputError(f"{folder}: {extra[0]} was not written by run {run_id} (runs mixed?): re-run identify")
    return run_id


@contextlib.contextmanager
def reading_run(folder: Path) -> Iterator[str]:
    """Hold a shared lock on an identify folder (no run may switch it meanwhile) and yield its checked run id."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not found (run `whale-reid identify --out {folder}` first)")
    busy = f"{folder}: an identify run is writing this folder now; enroll when it has finished"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(lock_path(folder), exclusive=False, wait=False, busy=busy))
        except OSError as err:  # a colleague's read-only folder: the manifest check alone guards it
            if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
        yield verify_run(folder)
