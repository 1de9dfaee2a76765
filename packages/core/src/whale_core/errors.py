"""The one exception type that means "the user's input is wrong", not "the program is wrong", and the
one-line wording of the operating system's failures (a full disk, a read-only folder) that are not bugs either."""

from __future__ import annotations

import errno

#: What the user can do about an operating-system failure, by errno.
OS_FIXES = {
    errno.ENOSPC: "free some space on that disk or write elsewhere, then run it again",
    errno.EFBIG: "larger than this process may write (`ulimit -f`) or the disk holds: free space or raise the limit",
    errno.EDQUOT: "your disk quota is used up: free some space and run it again",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "permission denied: fix the folder's permissions or choose another folder",
    errno.EPERM: "not permitted: fix the folder's permissions or choose another folder",
    errno.EISDIR: "that is a folder: give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.ENOENT: "not found: check the path",
    errno.ENAMETOOLONG: "the name is too long for the file system: choose a shorter one",
    errno.EEXIST: "already exists: remove it or choose another name",
}


class InputError(ValueError):
    """Bad input that the user can fix. The message is one line naming the file/row/key and the problem.

    Stage scripts catch it and print the message alone (no stack trace) with a non-zero exit.
    """


def os_error_line(err: OSError) -> str:
    """One line for an `OSError` the user (or the machine's state) caused: the file, the problem, the fix.

    A full disk, a read-only folder, a missing permission or a folder where a file was expected are not bugs:
    the command line and the stage scripts print this line and exit 2 instead of a traceback.
    """
    names = [str(n) for n in (err.filename, err.filename2) if n is not None]
    where = " → ".join(names) if names else "a file"
    problem = err.strerror or type(err).__name__
    fix = OS_FIXES.get(err.errno or -1, "")
    return f"{where}: {problem}" + (f" ({fix})" if fix else "")
