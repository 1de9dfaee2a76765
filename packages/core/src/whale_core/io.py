"""Atomic file writes: the one helper every writer in the project uses.

A file is written to a hidden temporary name in the same folder, flushed to disk and renamed
over the target only when complete, so a process killed at any moment leaves either the old
file or none — never a half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from whale_core.paths import NAME_MAX


def _temp_name(target: Path, token: str) -> str:
    """`.<stem>.<token>.tmp<suffix>`, the stem shortened (on a UTF-8 boundary) to keep the name ≤ NAME_MAX bytes.

    A legal 250-byte file name must not fail only because its temporary name is longer.
    """
    suffix = f".{token}.tmp{target.suffix}"
    room = NAME_MAX - 1 - len(suffix.encode("utf-8", "surrogateescape"))
    stem = target.stem.encode("utf-8", "surrogateescape")[: max(room, 0)].decode("utf-8", "ignore")
    return f".{stem}{suffix}"


def _create_temp(target: Path) -> Path:
    """A new empty temp file beside `target`, created with mode 0666 minus the umask (like `open(..., "w")`).

    `tempfile.mkstemp` would make it 0600, and the rename would carry that onto every output: a shared
    catalogue would be unreadable to colleagues.
    """
    for _ in range(100):
        tmp = target.parent / _temp_name(target, secrets.token_hex(4))
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error removed.

    Use it for writers that want a filename (torch.save, PIL's save, faiss.write_index, ...).
    The temporary name keeps the target's suffix so format-sniffing writers behave the same.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as err:  # a full disk or a lost permission: name the file meant, not its temporary name
        tmp.unlink(missing_ok=True)
        if err.filename in (None, str(tmp)) and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(target)) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_link(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Make `path` the same file as `source`, replacing it atomically, and return it.

    A hard link (no bytes copied, no space taken) where both lie on one filesystem that has them; else a copy.
    Either way `path` then holds `source`'s bytes, so a digest of one is the digest of the other. Writers here
    replace files by renaming (`atomic_path`), never in place, so a later rewrite of `source` leaves `path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target)
    tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:  # another filesystem, or one without hard links: copy
        with atomic_path(target) as copy:
            shutil.copyfile(source, copy)
        return target
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """Write `obj` as pretty, key-sorted JSON (NaN refused: JSON has no NaN) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, allow_nan=False) + "\n")


def atomic_write_csv(path: str | os.PathLike[str], frame: pd.DataFrame, **to_csv_kwargs: Any) -> Path:
    """Write a DataFrame as CSV (no index, '\\n' line endings) atomically."""
    to_csv_kwargs.setdefault("index", False)
    to_csv_kwargs.setdefault("lineterminator", "\n")
    return atomic_write_text(path, frame.to_csv(**to_csv_kwargs))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (a checkpoint's digest, a run folder's manifest)."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()
