"""What every stage script shares: its path arguments, params loading, the error boundary, logging.

A stage script is `main()` doing I/O around one `whale_reid` call; `run_stage(main)` turns an
`InputError` (bad data, bad params) or an `OSError` (a full disk, a read-only folder) into one clear line
on stderr and exit status 2; an unexpected error prints its traceback and exits 3. It logs one line when the
stage starts and one when it ends, with its time; when the output is not a terminal (a log file)
ultralytics' colour codes are stripped. The paths a stage reads and writes are its command-line arguments,
given by its `cmd:` in dvc.yaml — the one place they are named.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whale_core import InputError, configure_offline_env, os_error_line
from whale_reid.common.params import load_params as load_params  # re-exported for the stage scripts

log = logging.getLogger("whale_reid")


def stage_paths(description: str | None, *names: str, **options: str) -> argparse.Namespace:
    """Parse the stage's command line: one required `--<name>` path per name (`raw_dir` → `--raw-dir`).

    Args:
        description: the stage's docstring (shown by `--help`).
        names: the path arguments, as attribute names of the result (each a `Path`).
        options: further required string arguments (name → help), e.g. `model` for `--model`.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, help_text in options.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, required=True, help=help_text)
    for name in names:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=Path, required=True, metavar="PATH")
    return parser.parse_args()


ANSI_CODE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class PlainText(logging.Filter):
    """Strips ANSI colour codes from a record's message (ultralytics colours its lines even into a file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = ANSI_CODE.sub("", record.msg)
        return True


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not sys.stdout.isatty():
        logging.getLogger("ultralytics").addFilter(PlainText())


def stage_label(argv: list[str]) -> str:
    """The stage as dvc.yaml names it, from the command line: `crop`, `train_embedder demo` (its --model)."""
    label = Path(argv[0]).stem
    return f"{label} {argv[argv.index('--model') + 1]}" if "--model" in argv[:-1] else label


def run_stage(main: Callable[[], Any], announce: bool = True) -> Callable[[], None]:
    """Wrap a stage's `main` as the module entry point: offline env, logging, one-line input errors.

    Args:
        announce: log the stage's start and end (with its time); off for scripts that only print.
    """

    @functools.wraps(main)
    def entry() -> None:
        configure_offline_env(os.getcwd())
        setup_logging()
        label, started = stage_label(sys.argv), time.monotonic()
        if announce:
            log.info("stage %s: started", label)
        try:
            main()
            if announce:
                log.info("stage %s: done in %.0f s", label, time.monotonic() - started)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except OSError as err:  # a full disk, a read-only folder, a lost permission: not a bug, one line
            print(f"error: {os_error_line(err)}", file=sys.stderr)
            sys.exit(2)
        except Exception:  # a bug, not bad input: the traceback, and a status of its own
            log.exception("unexpected error in stage %s (a bug; please report it with this traceback)", main.__module__)
            sys.exit(3)

    return entry
