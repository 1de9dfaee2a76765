"""Make ultralytics behave offline and stay out of the caller's business.

Out of the box, ultralytics (8.4) turns on its MLflow/DVC/ClearML/... callbacks whenever the library is
installed (its MLflow callback creates `mlflow.db`/`mlruns/` in the working dir and ends the caller's run),
sends usage events, downloads `Arial.ttf` when it builds a dataset, downloads a model for its AMP self-check,
pins torch to cpu_count-1 threads and logs every argument and layer at INFO.
`prepare_ultralytics()` undoes all that; every module of this package calls it before using YOLO.
Its progress bars write colour codes and carriage-return frames to stdout whatever stdout is (its cache bar
ignores the log level); `plain_console()` keeps them out of log files.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from whale_core import atomic_path, configure_offline_env

log = logging.getLogger(__name__)

#: Integration switches of ultralytics' settings file; all off (the stage scripts log to MLflow themselves).
_SETTINGS_OFF = ("sync", "mlflow", "dvc", "clearml", "comet", "raytune", "tensorboard", "wandb", "hub", "neptune")
_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")


def _install_fonts(config_dir: Path) -> None:
    """Put a local TTF where ultralytics looks for Arial, so it never tries to download one."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in _FONTS:
        target = config_dir / name
        if not target.exists() and source.is_file():
            with atomic_path(target) as tmp:  # a half-copied font would never be repaired
                shutil.copyfile(source, tmp)


def _amp_without_download(model) -> bool:
    """ultralytics' AMP self-check downloads a COCO model to compare fp32 and AMP detections (offline it fails
    or waits); here AMP is simply on for CUDA models (`detector.amp`), off elsewhere, as ultralytics decides
    when its check passes."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        log.info("detector AMP on %s (ultralytics' download-based self-check skipped offline)", device)
    return device.type == "cuda"


def prepare_ultralytics(threads: int | None = None) -> None:
    """Set ultralytics up for offline, side-effect-free use in this process (idempotent).

    Sets the offline environment (settings under `$YOLO_CONFIG_DIR`, default `./.cache/ultralytics`) before
    the first import of ultralytics, switches off every integration callback and usage event, provides the
    fonts locally, and makes ultralytics' device selection use `threads` torch threads.

    Args:
        threads: torch CPU threads for training/prediction (None: all cores).
    """
    configure_offline_env()
    import torch
    import ultralytics.utils as ul_utils
    import ultralytics.utils.torch_utils as ul_torch
    from ultralytics import settings

    known = {key: False for key in _SETTINGS_OFF if key in settings}
    if any(settings.get(key) is not False for key in known):
        settings.update(known)
    _install_fonts(Path(ul_utils.USER_CONFIG_DIR))
    # its 1,700-character trainer-args line, the model table and the per-epoch lines: warnings only (the
    # stage logs what it trained and scored)
    ul_utils.LOGGER.setLevel(logging.WARNING)
    import ultralytics.engine.trainer as ul_trainer

    ul_trainer.check_amp = _amp_without_download
    n_threads = max(1, threads or os.cpu_count() or 1)
    # select_device() calls torch.set_num_threads(NUM_THREADS) with its own module-level copy of the constant.
    ul_torch.NUM_THREADS = n_threads
    torch.set_num_threads(n_threads)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _FinalFrames(io.TextIOBase):
    """A text stream that passes on each line's last carriage-return frame, without ANSI codes."""

    def __init__(self, target) -> None:
        self.target, self.line = target, ""

    def write(self, text: str) -> int:
        *done, self.line = (self.line + _ANSI.sub("", text)).split("\n")
        for line in done:
            self.target.write(line.rsplit("\r", 1)[-1] + "\n")
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def plain_console() -> Iterator[None]:
    """While ultralytics runs: on a terminal nothing changes; otherwise (a log file, a pipe) its bars reach
    stdout as one plain line each, their final frame (a frame never ended by a newline is dropped)."""
    if sys.stdout.isatty():
        yield
        return
    with contextlib.redirect_stdout(_FinalFrames(sys.stdout)):
        yield
