"""Crops shared by the matcher tests: random textures, warped and mirrored copies, a flat crop."""

from __future__ import annotations

import numpy as np
import pytest

from tests.matcher._synth import write
from whale_matcher import MatcherConfig, extract_features
from whale_matcher.synthetic import similarity, texture, warp

N_TEXTURES = 12


@pytest.fixture(scope="session")
def crops(tmp_path_factory) -> dict[str, np.ndarray]:
    """name → grayscale crop: t0..t11 textures, w<i> warped by the known similarity, m<i> mirrored, flat."""
    images = {f"t{i}": texture(i) for i in range(N_TEXTURES)}
    for i in range(0, N_TEXTURES, 2):
        images[f"w{i}"] = warp(images[f"t{i}"], similarity())
    images["m0"] = np.ascontiguousarray(images["t0"][:, ::-1])
    images["flat"] = np.full_like(images["t0"], 117)
    return images


@pytest.fixture(scope="session")
def crop_paths(crops, tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("crops")
    return {name: write(folder, name, img) for name, img in crops.items()}


@pytest.fixture(scope="session")
def feats(crop_paths):
    """RootSIFT features (the flipped crops' derived) of every crop, in `crop_paths` order."""
    return extract_features(list(crop_paths), list(crop_paths.values()), MatcherConfig(), progress=False)


def row(feats, name: str) -> int:
    return int(np.flatnonzero(feats.image == name)[0])
