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
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whale_core import configure_offline_env
from whale_reid.common.boundary import run_guarded, setup_logging
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
        status = run_guarded(main, f"stage {main.__module__}")
        if status == 0 and announce:
            log.info("stage %s: done in %.0f s", label, time.monotonic() - started)
        if status:
            sys.exit(status)

    return entry
