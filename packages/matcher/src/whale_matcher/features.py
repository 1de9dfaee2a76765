"""Keypoints + descriptors of many crops in one CSR layout: extraction and subsetting.

`extract_features` reads every crop through `whale_core.load_rgb`, converts it to grayscale and runs a
registered extractor (`whale_matcher.extractors`). With `cfg.mirror` the horizontally flipped crop is matched
too: SIFT's is derived from the crop's own histograms where it is compared (`Features.flipped_keypoints`,
`whale_matcher.coding.SIFT_MIRROR`), so it costs neither a second extraction nor bytes on disk; binary
descriptors have no such order, and their flipped crop is described and stored (`mirrored`). Descriptors
stay in their coding (`whale_matcher.coding`: SIFT as its histogram bytes) and become compared vectors in
`Features.descriptors`, only for the rows asked; `whale_matcher.storage` saves them and reads them back
memory-mapped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from whale_core import InputError, load_rgb
from whale_matcher import _parallel
from whale_matcher._rows import RowChain
from whale_matcher.coding import SIFT_MIRROR, Coding
from whale_matcher.config import MatcherConfig
from whale_matcher.extractors import make_extractor
from whale_matcher.outline import RADII, SIDE_POINTS, trace_outline

_CHUNK_PHOTOS = 16


@dataclasses.dataclass(frozen=True)
class Features:
    """Keypoints + descriptors of many photos in CSR layout (what the stage caches per region and split).

    Attributes:
        image: str [n] photo ids.
        offsets: int64 [n+1]; photo i's keypoints are rows `offsets[i]:offsets[i+1]`.
        xy: float32 [N, 2] keypoint coordinates (x, y) in the crop's pixels.
        desc: [N, stored width] descriptors in `coding` (uint8 SIFT histograms, packed bits, or float32
            vectors); `descriptors` gives the vectors compared.
        size: int32 [n, 2] crop width, height.
        mirrored: the same photos' features computed on the horizontally flipped crop (xy in the flipped
            frame: x_flipped = width − 1 − x), for binary descriptors extracted with `mirror` (and in files
            written before SIFT's were derived); else None. Read them through `flipped_keypoints`.
        outline_sides, outline_lengths: the fin outlines, when extracted with `outline`
            (`whale_matcher.outline.Outline`: float32 [n, 2, SIDE_POINTS, len(RADII)] and int32 [n, 2], lengths
            0 where no fin was traced); else None.
        coding: how `desc` is held (`whale_matcher.coding.Coding`); None = plain vectors, taken from the dtype
            (float32 compared as they are, uint8 as packed bits).

    xy, desc and the outline arrays may be memory-mapped (`whale_matcher.storage.load_features`) or joined
    parts (`whale_matcher._rows.RowChain`, from `concat`): the methods read only the rows they need.

    Raises:
        ValueError: on construction, when the arrays do not fit together.
    """

    image: np.ndarray
    offsets: np.ndarray
    xy: np.ndarray
    desc: np.ndarray
    size: np.ndarray
    mirrored: Features | None = None
    outline_sides: np.ndarray | None = None
    outline_lengths: np.ndarray | None = None
    coding: Coding | None = None

    def __post_init__(self) -> None:
        if self.coding is None:
            object.__setattr__(self, "coding", Coding.of_array(self.desc))
        n, offsets = len(self.image), self.offsets
        if self.image.ndim != 1 or offsets.shape != (n + 1,) or self.size.shape != (n, 2):
            raise ValueError(f"inconsistent shapes: {n} images, offsets {offsets.shape}, size {self.size.shape}")
        total = len(self.xy)
        self.coding.check(self.desc)
        if self.xy.shape != (total, 2) or len(self.desc) != total:
            raise ValueError(f"inconsistent keypoint arrays: xy {self.xy.shape}, desc {self.desc.shape}")
        if offsets[0] != 0 or offsets[-1] != total or (np.diff(offsets) < 0).any():
            raise ValueError(f"offsets must rise from 0 to {total} keypoints")
        if self.mirrored is not None and (
            len(self.mirrored) != n
            or self.mirrored.coding != self.coding
            or self.mirrored.desc.shape[1:] != self.desc.shape[1:]
        ):
            raise ValueError("mirrored features must describe the same photos with the same descriptor coding")
        if (self.outline_sides is None) != (self.outline_lengths is None):
            raise ValueError("outline sides and lengths come together")
        if self.outline_sides is not None and (
            self.outline_sides.shape != (n, 2, SIDE_POINTS, len(RADII)) or self.outline_lengths.shape != (n, 2)
        ):
            raise ValueError(f"outline arrays {self.outline_sides.shape}, {self.outline_lengths.shape} for {n} images")

    def __len__(self) -> int:
        return len(self.image)

    @property
    def binary(self) -> bool:
        """Whether the descriptors are packed bits (compared by Hamming distance)."""
        return self.coding.binary

    @property
    def dim(self) -> int:
        """Length of the compared descriptor vectors (floats, or bytes of packed bits)."""
        return self.coding.dim(self.desc.shape[1])

    @property
    def has_outlines(self) -> bool:
        """Whether fin outlines were extracted (then `outline_sides` / `outline_lengths` hold them)."""
        return self.outline_sides is not None

    def counts(self) -> np.ndarray:
        """int64 [n] keypoints per photo."""
        return np.diff(self.offsets)

    def descriptors(self, rows: slice | np.ndarray) -> np.ndarray:
        """The compared vectors of keypoint rows `rows`: float32 [m, dim], or packed bits (uint8) when binary."""
        return self.coding.decode(self.desc[rows])

    def keypoints(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(xy [m, 2], compared descriptor vectors [m, dim]) of photo `i`."""
        rows = slice(int(self.offsets[i]), int(self.offsets[i + 1]))
        return np.asarray(self.xy[rows]), self.descriptors(rows)

    @property
    def can_flip(self) -> bool:
        """Whether `flipped_keypoints` has an answer: a stored mirrored part, or SIFT histograms to permute."""
        return self.mirrored is not None or self.coding.mirrorable

    def flipped_keypoints(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(xy [m, 2] in the flipped frame, compared vectors [m, dim]) of photo `i`'s horizontally flipped crop.

        The stored mirrored part when there is one, else derived from the crop's own keypoints: x_flipped =
        width − 1 − x and the SIFT histogram's columns in `SIFT_MIRROR` order (the vectors are made per
        column, so permuting them permutes the histogram).

        Raises:
            ValueError: descriptors without a stored mirrored part that cannot be permuted (binary ones).
        """
        if self.mirrored is not None:
            return self.mirrored.keypoints(i)
        if not self.coding.mirrorable:
            raise ValueError(f"{self.coding} descriptors: the flipped crop was not described (extract with mirror)")
        xy, vectors = self.keypoints(i)
        flipped_xy = np.column_stack([self.size[i, 0] - 1 - xy[:, 0], xy[:, 1]]).astype(np.float32)
        return flipped_xy, np.ascontiguousarray(vectors[:, SIFT_MIRROR])

    def flipped(self) -> Features:
        """Every photo's `flipped_keypoints` as one `Features` (reads every descriptor when derived)."""
        if self.mirrored is not None:
            return self.mirrored
        flips = [self.flipped_keypoints(i) for i in range(len(self))]
        return Features.from_photos(self.image, [xy for xy, _ in flips], [vec for _, vec in flips], self.size,
                                    empty_desc=np.zeros((0, self.dim), np.float32), coding=Coding("float"))  # fmt: skip

    def take(self, rows: Sequence[int] | np.ndarray) -> Features:
        """The features of photos `rows` (indices, or a boolean mask), in that order (mirrored too)."""
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64).reshape(-1)
        starts = self.offsets[rows]
        counts = self.offsets[rows + 1] - starts
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        index = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        mirrored = self.mirrored.take(rows) if self.mirrored is not None else None
        outlines = (self.outline_sides[rows], self.outline_lengths[rows]) if self.has_outlines else (None, None)
        return Features(self.image[rows], offsets, self.xy[index], self.desc[index], self.size[rows], mirrored,
                        *outlines, coding=self.coding)  # fmt: skip

    def renamed(self, image: Sequence[str]) -> Features:
        """The same features under other photo ids (one per photo, mirrored part too)."""
        ids = np.asarray(list(image), dtype=str).reshape(-1)
        mirrored = self.mirrored.renamed(ids) if self.mirrored is not None else None
        return dataclasses.replace(self, image=ids, mirrored=mirrored)

    def as_vectors(self) -> Features:
        """These features with the compared vectors as descriptors (coding `float`, or `binary` as they are).

        Reads every descriptor (the flipped crops' too, stored from then on) unless they already are float32
        vectors or packed bits.
        """
        if self.binary or (self.coding.kind == "float" and self.desc.dtype == np.float32):
            return self
        mirrored = self.flipped().as_vectors() if self.can_flip else None  # derived SIFT flips need the histograms
        vectors = self.descriptors(slice(None))
        return dataclasses.replace(self, desc=vectors, coding=Coding("float"), mirrored=mirrored)

    @classmethod
    def concat(cls, parts: Sequence[Features]) -> Features:
        """The photos of every part, in order (all mirrored or none, all with fin outlines or none).

        The keypoint arrays are not copied: xy, desc and the outlines become `RowChain`s over the parts' own
        (memory-mapped ones stay unread). Parts whose descriptors are held differently (a format-1 file beside
        a newer one, other `bits`) are joined as float32 vectors (`as_vectors`: those parts are read whole), and
        so are the flipped crops' where some parts store theirs and others derive them (`flipped`).

        Raises:
            ValueError: no parts, binary and float descriptors together, or parts that cannot be joined.
        """
        if not parts:
            raise ValueError("Features.concat: no parts")
        if len({p.binary for p in parts}) > 1:
            raise ValueError("Features.concat: binary and float descriptors cannot be joined")
        if len({(p.coding, p.desc.dtype) for p in parts}) > 1:
            parts = [p.as_vectors() for p in parts]
        counts = np.concatenate([p.counts() for p in parts])
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        mirrored = None
        if any(p.mirrored is not None for p in parts):
            if not all(p.can_flip for p in parts):
                raise ValueError("Features.concat: some parts have mirrored features, some cannot have them")
            mirrored = cls.concat([p.flipped() for p in parts])
        sides = lengths = None
        if any(p.has_outlines for p in parts):
            if not all(p.has_outlines for p in parts):
                raise ValueError("Features.concat: some parts have fin outlines, some not")
            sides = RowChain([p.outline_sides for p in parts])
            lengths = RowChain([p.outline_lengths for p in parts])
        return cls(
            image=np.concatenate([p.image for p in parts]),
            offsets=offsets,
            xy=RowChain([p.xy for p in parts]),
            desc=RowChain([p.desc for p in parts]),
            size=np.concatenate([p.size for p in parts]),
            mirrored=mirrored,
            outline_sides=sides,
            outline_lengths=lengths,
            coding=parts[0].coding,
        )

    @classmethod
    def from_photos(
        cls,
        images: Sequence[str],
        xys: Sequence[np.ndarray],
        descs: Sequence[np.ndarray],
        sizes: np.ndarray,
        *,
        empty_desc: np.ndarray,
        coding: Coding | None = None,
    ) -> Features:
        """Assemble per-photo arrays (no mirrored part) into one CSR `Features`.

        Args:
            images, xys, descs, sizes: per photo: id, [m, 2] points, [m, D] stored descriptors, (width, height).
            empty_desc: a [0, D] array of the stored descriptors' dtype (what an empty set of photos holds).
            coding: how the descriptors are held (None: plain vectors, `Coding.of_array`).
        """
        offsets = np.zeros(len(images) + 1, np.int64)
        np.cumsum([len(x) for x in xys], out=offsets[1:])
        return cls(
            image=np.asarray(list(images), dtype=str).reshape(-1),
            offsets=offsets,
            xy=np.concatenate([np.zeros((0, 2), np.float32), *xys]).astype(np.float32, copy=False),
            desc=np.concatenate([empty_desc, *descs]),
            size=np.asarray(sizes, np.int32).reshape(len(images), 2),
            coding=coding,
        )


def working_size(gray: np.ndarray, resize_px: int) -> np.ndarray:
    """The crop at the size keypoints are detected on: longer side `resize_px` (0 = unchanged)."""
    if not resize_px or not gray.size or max(gray.shape) == resize_px:
        return gray
    scale = resize_px / max(gray.shape)
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)


def _extract_chunk(task: list[tuple[str, str]]) -> list[tuple]:
    """Worker: per photo (w, h, xy, desc, mirrored xy, mirrored desc, outline) of a chunk of (image, path)."""
    cfg: MatcherConfig = _parallel.shared()
    extractor = make_extractor(cfg.extractor, cfg.max_keypoints)
    coding = extractor.coding(cfg.descriptor_bits)
    out = []
    for _image, path in task:
        rgb = np.asarray(load_rgb(path))
        gray = working_size(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cfg.resize_px)
        xy, desc = extractor.detect_and_describe(gray)
        describe_flip = cfg.mirror and not coding.mirrorable  # SIFT's flipped crop is derived when compared
        mxy, mdesc = extractor.detect_and_describe(cv2.flip(gray, 1)) if describe_flip else (None, None)
        outline = trace_outline(rgb) if cfg.outline else None
        stored = coding.encode(desc), None if mdesc is None else coding.encode(mdesc)
        out.append((gray.shape[1], gray.shape[0], xy, stored[0], mxy, stored[1], outline))
    return out


def extract_features(
    images: Sequence[str], paths: Sequence[str | Path], cfg: MatcherConfig, *, progress: bool = True
) -> Features:
    """Detect and describe the keypoints of every crop.

    Args:
        images: photo ids, one per path.
        paths: crop files (any format `whale_core.load_rgb` reads).
        cfg: extractor, `max_keypoints`, `mirror` (binary descriptors: also describe the flipped crop),
            `descriptor_bits` (how the descriptors are kept: `whale_matcher.coding`) and `workers`.
        progress: show a tqdm bar.

    Returns:
        The photos' `Features` in input order (`mirrored` filled when `cfg.mirror` and the descriptors are
        binary; SIFT's flipped crop is derived by `Features.flipped_keypoints`); a crop without
        keypoints has 0 rows.

    Raises:
        InputError: an unreadable crop (the message starts with its path); lengths that differ.
    """
    if len(images) != len(paths):
        raise InputError(f"extract_features: {len(images)} image ids but {len(paths)} paths")
    extractor = make_extractor(cfg.extractor, cfg.max_keypoints)  # an unknown name fails before any work
    pairs = [(str(i), str(p)) for i, p in zip(images, paths)]
    tasks = [pairs[s : s + _CHUNK_PHOTOS] for s in range(0, len(pairs), _CHUNK_PHOTOS)]
    photos: list[tuple] = []
    with tqdm(total=len(pairs), desc="keypoints", unit="photo", disable=None if progress else True) as bar:
        for chunk in _parallel.imap_ordered(_extract_chunk, tasks, cfg, cfg.workers):
            photos.extend(chunk)
            bar.update(len(chunk))
    sizes = np.array([(p[0], p[1]) for p in photos], np.int32).reshape(-1, 2)
    coding = extractor.coding(cfg.descriptor_bits)
    stored = {"empty_desc": coding.encode(extractor.empty()[1]), "coding": coding}
    plain = Features.from_photos(images, [p[2] for p in photos], [p[3] for p in photos], sizes, **stored)
    if cfg.outline:
        sides = np.stack([p[6].sides for p in photos]) if photos else np.zeros((0, 2, SIDE_POINTS, len(RADII)))
        lengths = np.stack([p[6].lengths for p in photos]) if photos else np.zeros((0, 2))
        plain = dataclasses.replace(
            plain, outline_sides=sides.astype(np.float32), outline_lengths=lengths.astype(np.int32)
        )
    if not cfg.mirror or coding.mirrorable:
        return plain
    mirrored = Features.from_photos(images, [p[4] for p in photos], [p[5] for p in photos], sizes, **stored)
    return dataclasses.replace(plain, mirrored=mirrored)
