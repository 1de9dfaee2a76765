"""Suite-wide set-up: the offline environment and in-repo caches before any library is imported."""

from __future__ import annotations

import os
from pathlib import Path

from whale_core import configure_offline_env

REPO_ROOT = Path(__file__).resolve().parents[1]
configure_offline_env(REPO_ROOT)
os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///" + str(REPO_ROOT / ".cache" / "pytest-mlflow.db"))
