"""Pluggable keypoint extractors: a registry of names → classes with `detect_and_describe(gray) -> (xy, desc)`.

Every extractor keeps at most `max_keypoints` keypoints, the strongest by detector response, in that
order. SIFT and RootSIFT give OpenCV's 128-byte SIFT histograms, made into the vectors compared by L2 where
they are compared (`whale_matcher.coding`); binary ones (ORB, AKAZE; packed uint8) are compared by Hamming
distance. A crop without keypoints (flat colour) gives empty arrays, never an error.
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from whale_matcher.coding import Coding

EXTRACTORS: dict[str, type[Extractor]] = {}


def register(name: str):
    """Class decorator adding an `Extractor` subclass to `EXTRACTORS` under `name`."""

    def add(cls: type[Extractor]) -> type[Extractor]:
        cls.name = name
        EXTRACTORS[name] = cls
        return cls

    return add


def make_extractor(name: str, max_keypoints: int) -> Extractor:
    """An extractor instance by registry name.

    Raises:
        KeyError: naming the unknown extractor and the known ones.
    """
    try:
        return EXTRACTORS[name](max_keypoints)
    except KeyError:
        raise KeyError(f"unknown extractor {name!r} (known: {', '.join(sorted(EXTRACTORS))})") from None


class Extractor:
    """Base class: wraps an OpenCV `Feature2D`; subclasses set `kind`, `dim` and build `self.detector`.

    Attributes:
        name: registry name (set by `register`).
        kind: what the descriptors are (`whale_matcher.coding.Coding.kind`): "sift" / "rootsift" (uint8 SIFT
            histograms), "binary" (packed bits, Hamming distance) or "float" (float32 vectors, L2).
        dim: descriptor length (histogram bytes, floats, or bytes of packed bits).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "sift"
    dim: ClassVar[int] = 128

    def __init__(self, max_keypoints: int) -> None:
        self.max_keypoints = max_keypoints
        self.detector = self._create()

    def _create(self) -> cv2.Feature2D:
        raise NotImplementedError

    @property
    def dtype(self) -> type:
        """The descriptors' dtype: float32 for the "float" kind, else uint8."""
        return np.float32 if self.kind == "float" else np.uint8

    def coding(self, bits: int = 8) -> Coding:
        """How the descriptors are kept: SIFT histograms with `bits` per byte (`MatcherConfig.descriptor_bits`)."""
        return Coding(self.kind, bits if self.kind in ("sift", "rootsift") else 8)

    def empty(self) -> tuple[np.ndarray, np.ndarray]:
        """The (xy, desc) of a photo without keypoints."""
        return np.zeros((0, 2), np.float32), np.zeros((0, self.dim), self.dtype)

    def detect_and_describe(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of one grayscale crop.

        Args:
            gray: uint8 [h, w] image.

        Returns:
            xy: float32 [n, 2] keypoint coordinates (x, y) in the crop's pixels, strongest first.
            desc: [n, dim] descriptors of the extractor's `kind` (uint8 SIFT histograms or packed bits),
                row-aligned with `xy`.
        """
        keypoints, desc = self.detector.detectAndCompute(gray, None)
        if not keypoints or desc is None:
            return self.empty()
        response = np.fromiter((k.response for k in keypoints), np.float32, len(keypoints))
        keep = np.argsort(-response, kind="stable")[: self.max_keypoints]
        xy = np.array([keypoints[i].pt for i in keep], np.float32).reshape(-1, 2)
        return xy, self._post(desc[keep])

    def _post(self, desc: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(desc, self.dtype)


@register("sift")
class SiftExtractor(Extractor):
    """OpenCV SIFT, compared as floats by L2.

    OpenCV rounds each descriptor to bytes (`saturate_cast<uchar>`) before returning it as float32, so the
    histogram is kept as those bytes.

    Raises:
        RuntimeError: from `detect_and_describe`, when this OpenCV's SIFT descriptors are not whole bytes.
    """

    def _create(self) -> cv2.Feature2D:
        return cv2.SIFT_create(nfeatures=self.max_keypoints)

    def _post(self, desc: np.ndarray) -> np.ndarray:
        histograms = np.clip(desc, 0, 255).astype(np.uint8)
        if not np.array_equal(histograms, desc):
            raise RuntimeError(f"OpenCV {cv2.__version__}: SIFT descriptors are not whole bytes (0–255)")
        return histograms


@register("rootsift")
class RootSiftExtractor(SiftExtractor):
    """RootSIFT (Arandjelović & Zisserman 2012): SIFT L1-normalised then square-rooted, so unit L2.

    L2 between RootSIFT vectors is the Hellinger kernel on the original SIFT histograms. The histograms are
    kept; `whale_matcher.coding` makes the RootSIFT vectors where they are compared.
    """

    kind = "rootsift"


@register("orb")
class OrbExtractor(Extractor):
    """OpenCV ORB (256 bits = 32 bytes), compared by Hamming distance."""

    kind = "binary"
    dim = 32

    def _create(self) -> cv2.Feature2D:
        return cv2.ORB_create(nfeatures=self.max_keypoints)


def akaze_available() -> bool:
    """Whether this OpenCV has AKAZE: OpenCV 4.x does; 5.0 moved it out of the main modules (to contrib)."""
    return _akaze_factory() is not None


def _akaze_factory():
    return getattr(cv2, "AKAZE_create", None) or getattr(getattr(cv2, "xfeatures2d", None), "AKAZE_create", None)


@register("akaze")
class AkazeExtractor(Extractor):
    """OpenCV AKAZE with its MLDB descriptor (486 bits in 61 bytes), compared by Hamming distance.

    Raises:
        RuntimeError: on construction, when this OpenCV has no AKAZE (OpenCV 5.0 without contrib).
    """

    kind = "binary"
    dim = 61

    def _create(self) -> cv2.Feature2D:
        factory = _akaze_factory()
        if factory is None:
            raise RuntimeError(
                f"extractor 'akaze' needs OpenCV 4.x or opencv-contrib-python; OpenCV {cv2.__version__} has no AKAZE"
            )
        return factory()
