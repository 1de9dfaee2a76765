"""How a `Features`' descriptors are held (in memory and on disk) and turned into the vectors matching compares.

OpenCV's SIFT builds each descriptor as 128 bytes (`saturate_cast<uchar>`); the float32 descriptor it returns
by default holds those same integers. The SIFT family is therefore kept as those bytes, a quarter of float32,
and its vectors are made where they are compared: `sift` as float32, `rootsift` L1-normalised and
square-rooted by the very operations extraction used before, so the answers equal those of float32 storage.

Below 8 `bits`, each byte `h` becomes the `bits`-bit code round(√h · (2^bits − 1) / √255), packed: √h is the
space RootSIFT compares in (its vector is √h / √Σh), so the rounding error is even across the histogram. The
RootSIFT vector is then the codes scaled to unit length, the SIFT vector the codes squared back. This is lossy:
`benchmarks/features.py` measures the inliers it moves.

Kinds: `float` (float32 vectors as they are, or the float16 of format-1 compact files: features written before
codings, and descriptors of unknown origin), `binary` (packed bits of ORB / AKAZE, compared by Hamming
distance), `sift` and `rootsift` (SIFT histogram bytes or their codes).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

SIFT_DIM = 128
_HISTOGRAM_KINDS = ("sift", "rootsift")


def _sift_mirror_order() -> np.ndarray:
    """Column order that makes a SIFT histogram the one of the horizontally flipped crop.

    OpenCV lays a descriptor out as 4 × 4 spatial cells (rows along the keypoint's orientation, then
    columns) × 8 gradient-orientation bins. Flipping the crop mirrors the keypoint's frame: the cell rows
    swap top for bottom and each gradient angle φ (relative to the keypoint's orientation) becomes −φ, so
    bin o becomes bin (8 − o) mod 8. Measured against SIFT run on the flipped crop: the permuted descriptor
    is within ~8 % of its norm (the half-pixel sampling offset), every other row/column/bin order ~80 %.
    """
    row, col, ori = np.meshgrid(np.arange(4), np.arange(4), np.arange(8), indexing="ij")
    return ((3 - row) * 32 + col * 8 + (8 - ori) % 8).reshape(-1)


SIFT_MIRROR = _sift_mirror_order()


@dataclasses.dataclass(frozen=True)
class Coding:
    """The representation of one set of descriptors.

    Attributes:
        kind: "float", "binary", "sift" or "rootsift" (the module docstring).
        bits: bits stored per histogram byte of `sift` / `rootsift` (8 = the bytes themselves, exact; 4–7 =
            codes of √h, lossy); 8 for the other kinds.

    Raises:
        ValueError: on construction, an unknown kind or bits outside [4, 8] (8 only for float and binary).
    """

    kind: Literal["float", "binary", "sift", "rootsift"]
    bits: int = 8

    def __post_init__(self) -> None:
        if self.kind not in ("float", "binary", *_HISTOGRAM_KINDS):
            raise ValueError(f"unknown descriptor coding {self.kind!r}")
        if not 4 <= self.bits <= 8 or (self.kind not in _HISTOGRAM_KINDS and self.bits != 8):
            raise ValueError(f"descriptor coding {self.kind}: {self.bits} bits (4–8 for SIFT histograms, else 8)")

    def __str__(self) -> str:
        return f"{self.kind} {self.bits}-bit" if self.kind in _HISTOGRAM_KINDS else self.kind

    @classmethod
    def of_array(cls, desc: np.ndarray) -> Coding:
        """The coding of plain vectors: float ones as they are, uint8 ones as packed bits."""
        return cls("binary") if desc.dtype == np.uint8 else cls("float")

    @property
    def mirrorable(self) -> bool:
        """Whether the flipped crop's descriptors follow from these (SIFT histograms: `SIFT_MIRROR`)."""
        return self.kind in _HISTOGRAM_KINDS

    @property
    def binary(self) -> bool:
        """Whether the vectors are packed bits (compared by Hamming distance)."""
        return self.kind == "binary"

    def dim(self, stored_width: int) -> int:
        """Length of the compared vectors (floats, or bytes of packed bits) of rows `stored_width` bytes wide."""
        return SIFT_DIM if self.kind in _HISTOGRAM_KINDS else stored_width

    def compatible(self, other: Coding) -> bool:
        """Whether vectors of the two codings can be compared (same space; `float` is of unknown origin)."""
        if self.binary != other.binary:
            return False
        return "float" in (self.kind, other.kind) or self.kind == other.kind

    def check(self, desc: np.ndarray) -> None:
        """Raise ValueError unless `desc` (stored rows) has this coding's dtype and width."""
        if self.kind == "float":
            ok = desc.dtype in (np.float32, np.float16)
        else:
            ok = desc.dtype == np.uint8 and (self.binary or desc.shape[1:] == (SIFT_DIM * self.bits // 8,))
        if desc.ndim != 2 or not ok:
            raise ValueError(f"descriptors {desc.dtype} {desc.shape} are not of coding {self}")

    def encode(self, histograms: np.ndarray) -> np.ndarray:
        """Stored rows of uint8 [m, 128] SIFT histograms (as they are at 8 bits); other kinds pass through."""
        if self.kind not in _HISTOGRAM_KINDS or self.bits == 8:
            return histograms
        top = (1 << self.bits) - 1
        codes = np.rint(np.sqrt(histograms.astype(np.float32)) * np.float32(top / np.sqrt(255.0))).astype(np.uint8)
        planes = np.unpackbits(codes[:, :, None], axis=2)[:, :, 8 - self.bits :]  # each code's low `bits` bits
        return np.packbits(planes.reshape(len(codes), SIFT_DIM * self.bits), axis=1)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """The compared vectors of stored rows: float32 [m, dim], or the packed bits (uint8) of binary kinds."""
        stored = np.asarray(stored)
        if self.kind == "binary":
            return stored
        if self.kind == "float":
            return stored.astype(np.float32, copy=False)
        if self.bits == 8:
            values = stored.astype(np.float32)
            if self.kind == "sift":
                return values
            l1 = np.maximum(values.sum(axis=1, keepdims=True, dtype=np.float64), 1e-12)
            return np.ascontiguousarray(np.sqrt(values / l1.astype(np.float32)), np.float32)
        planes = np.unpackbits(stored, axis=1).reshape(len(stored), SIFT_DIM, self.bits)
        codes = planes.astype(np.float32) @ (2.0 ** np.arange(self.bits - 1, -1, -1)).astype(np.float32)
        if self.kind == "sift":
            return np.square(codes * np.float32(np.sqrt(255.0) / ((1 << self.bits) - 1)))
        length = np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), np.float32(1e-12))
        return np.ascontiguousarray(codes / length, np.float32)
