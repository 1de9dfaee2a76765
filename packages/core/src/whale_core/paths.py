"""Names and paths taken from files: each name a safe basename, each read and write inside its folder.

A file handed over by someone else (an identify folder, a gallery version, a CSV) may carry names such
as `../../../../tmp/PWNED` or `/etc/hostname`, or a symlink pointing out of its folder. `safe_name`
refuses anything but a plain file name; `inside` joins a relative name onto its folder and refuses the
result unless its real path (symlinks resolved) is still inside the folder's real path.
"""

from __future__ import annotations

import os
from pathlib import Path

from whale_core.errors import InputError

#: Longest file name most filesystems hold (bytes, UTF-8): ext4, XFS, APFS, NTFS (in UTF-16 units).
NAME_MAX = 255


def safe_name(name: object, what: str = "name") -> str:
    """`name` itself when it is a plain file name (no folder part, not `.`/`..`, no NUL, ≤ NAME_MAX bytes).

    Args:
        name: the name as read from a file.
        what: what the name is, for the message (e.g. "image id in identify/query_embeddings.npz").

    Raises:
        InputError: naming `what` and the offending name.
    """
    text = str(name)
    if not text.strip() or text in (".", ".."):
        raise InputError(f"{what} {text!r} is not a file name")
    if "/" in text or "\\" in text or "\0" in text or (len(text) > 1 and text[1] == ":"):
        raise InputError(f"{what} {text!r} is not a plain file name (it holds a folder or drive part)")
    if len(text.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise InputError(f"{what} {text[:40]!r}… is longer than {NAME_MAX} bytes")
    return text


def inside(folder: str | os.PathLike[str], relative: str | os.PathLike[str], what: str = "path") -> Path:
    """`folder / relative`, refused unless its real path (symlinks resolved) lies inside `folder`'s real path.

    The file need not exist yet (a path to write); every existing part of it is resolved, and the resolved
    path is returned, so what is opened is what was checked.

    Raises:
        InputError: for absolute names, and for names or symlinks that lead out of `folder`.
    """
    text = os.fspath(relative)
    if not str(text).strip():
        raise InputError(f"{what}: empty name (folder {folder})")
    if os.path.isabs(text) or str(text).startswith(("/", "\\")):
        raise InputError(f"{what} {str(text)!r} is an absolute path; it must stay inside {folder}")
    joined = Path(folder) / text
    root, real = Path(folder).resolve(), joined.resolve()
    if real != root and root not in real.parents:
        raise InputError(f"{what} {str(text)!r} leads out of {folder} (to {real})")
    return real
