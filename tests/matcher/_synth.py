"""Writing the synthetic crops (`whale_matcher.synthetic`) to PNG files for the extraction tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write(folder: Path, name: str, gray: np.ndarray) -> Path:
    """Save a crop as PNG (RGB) and return its path."""
    path = folder / f"{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    return path
