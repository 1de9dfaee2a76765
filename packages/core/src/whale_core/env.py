"""The offline-safe environment: no telemetry, analytics, update checks or hub look-ups.

`make` exports the same variables; `configure_offline_env` sets them (without overriding what the
user set) for code started another way — tests, `python -m pipelines.x`, the CLI. Call it before
importing ultralytics, mlflow, albumentations or timm.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_ENV: dict[str, str] = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "HF_HUB_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "NO_ALBUMENTATIONS_UPDATE": "1",
}


def configure_offline_env(workdir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Set the offline variables (and the in-repo config dirs) unless already set.

    Args:
        workdir: where ultralytics' settings and matplotlib's cache live (`<workdir>/.cache/...`);
            defaults to the current directory. Nothing is written to the user's home.

    Returns:
        The variables as they now stand.
    """
    cache = Path(workdir or os.getcwd()).resolve() / ".cache"
    wanted = {
        **OFFLINE_ENV,
        "YOLO_CONFIG_DIR": str(cache / "ultralytics"),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
    }
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in wanted}
