"""The one error boundary and logging set-up of the `whale-reid` command and of every DVC stage script.

Bad input (`InputError`: bad data, bad params, a missing artefact) and the machine's state (`OSError`: a full
disk, a read-only folder) are one line on stderr and exit status 2; anything else is a bug: its traceback is
logged and the status is `CRASH` (3), so scripts can tell it from the user's mistakes.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable

from whale_core import InputError, os_error_line

log = logging.getLogger("whale_reid")
BAD_INPUT = 2  #: exit status of a bad input or a machine problem (one line on stderr)
CRASH = 3  #: exit status of an unexpected error (a bug: the traceback is printed)
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class PlainText(logging.Filter):
    """Strips ANSI colour codes from a record's message (ultralytics colours its lines even into a file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = ANSI_CODE.sub("", record.msg)
        return True


def setup_logging(level: int = logging.INFO) -> None:
    """One line per record with its time; colour codes stripped when the output is not a terminal (a log file)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("faiss").setLevel(logging.WARNING)  # which CPU build it loaded: 5 lines in every stage
    if not sys.stdout.isatty():
        logging.getLogger("ultralytics").addFilter(PlainText())


def run_guarded(work: Callable[[], int | None], what: str) -> int:
    """Run `work` and return its exit status (None counts as 0), or 2 / `CRASH` for what it raised.

    Args:
        what: names the command or stage in the bug report line.
    """
    try:
        return work() or 0
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
    except OSError as err:  # a full disk, a read-only folder, a folder given for a file: the machine's state
        print(f"error: {os_error_line(err)}", file=sys.stderr)
    except Exception:  # not the user's mistake: its own status
        log.exception("unexpected error in %s (a bug; please report it with this traceback)", what)
        return CRASH
    return BAD_INPUT
