"""What every stage script shares: params loading, the error boundary, logging, MLflow set-up.

A stage script is `main()` doing I/O around package calls; `run_stage(main)` turns an
`InputError` (bad data, bad params) into one clear line on stderr and exit status 2; an unexpected
error prints its traceback and exits 3.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whale_core import InputError, configure_offline_env
from whale_reid.params import PARAMS_FILE as PARAMS_FILE  # re-exported for the stage scripts
from whale_reid.params import load_params as load_params

REPO_ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("whale_reid")


def params_digest(*sections: Any) -> str:
    """A short, stable hash of params sections (tags MLflow runs so stale runs can be filtered out)."""
    blob = json.dumps(sections, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def git_sha() -> str:
    """The commit the code runs at, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run_stage(main: Callable[[], Any]) -> Callable[[], None]:
    """Wrap a stage's `main` as the module entry point: offline env, logging, one-line input errors."""

    @functools.wraps(main)
    def entry() -> None:
        configure_offline_env(os.getcwd())
        setup_logging()
        try:
            main()
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except Exception:  # a bug, not bad input: the traceback, and a status of its own
            log.exception("unexpected error in stage %s (a bug; please report it with this traceback)", main.__module__)
            sys.exit(3)

    return entry
