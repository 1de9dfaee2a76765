"""`Features` on disk: one uncompressed, pickle-free `.npz` per set, read back memory-mapped.

`save_features` writes every array as its own `.npz` member, the descriptors in their coding
(`whale_matcher.coding`: SIFT as its histogram bytes, 136 bytes a keypoint with its float32 coordinates
instead of float32's 520). `load_features` reads the small arrays (photo ids, offsets, sizes) and maps the
keypoint arrays where they lie in the file, so verifying a shortlist reads only the candidates' rows: a
Kaggle-size gallery is not loaded into memory (`benchmarks/features.py` measures it).

Format 2 adds the descriptor coding (`coding_kind`, `coding_bits`); format-1 files (float32 descriptors,
or the float16 of their compact option) are still read, as plain vectors.
"""

from __future__ import annotations

import math
import struct
import zipfile
from pathlib import Path

import numpy as np

from whale_core import InputError, atomic_path
from whale_matcher.coding import Coding
from whale_matcher.features import Features

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_ARRAYS = ("offsets", "xy", "desc", "size")
_OUTLINE_ARRAYS = ("outline_sides", "outline_lengths")
_IN_MEMORY = {"format_version", "coding_kind", "coding_bits", "image", "offsets", "size", "mirrored_offsets",
              "mirrored_size"}  # fmt: skip
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def save_features(path: Path, feats: Features) -> None:
    """Write `feats` (and its mirrored part) to one uncompressed `.npz`, atomically; loadable without pickle."""
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "coding_kind": np.array(feats.coding.kind),
        "coding_bits": np.array(feats.coding.bits),
        "image": feats.image.astype(str),
    }
    parts = [("", feats)] + ([("mirrored_", feats.mirrored)] if feats.mirrored is not None else [])
    for prefix, part in parts:
        arrays.update({prefix + name: np.asarray(getattr(part, name)) for name in _ARRAYS})
    if feats.has_outlines:
        arrays.update({name: np.asarray(getattr(feats, name)) for name in _OUTLINE_ARRAYS})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_features(path: Path) -> Features:
    """Read what `save_features` wrote (format 1 or 2): keypoint arrays memory-mapped, read-only.

    Raises:
        InputError: naming the file when it is missing, not a features file, of a newer format, corrupt or
            inconsistent.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: features file not found")
    try:
        arrays = _open_members(path)
        version = int(arrays.pop("format_version"))
        if version not in READABLE_VERSIONS:
            raise ValueError(
                f"format version {version}, this code reads {READABLE_VERSIONS}: rebuild it with this code "
                "(`dvc repro local_features` for the pipeline's features, identify for a run's query features)"
            )
        coding = Coding(str(arrays.pop("coding_kind")), int(arrays.pop("coding_bits"))) if version >= 2 else None
        image = arrays.pop("image")
        mirrored = None
        if "mirrored_offsets" in arrays:
            mirrored = Features(image, **{name: arrays.pop(f"mirrored_{name}") for name in _ARRAYS}, coding=coding)
        outlines = {name: arrays.pop(name) for name in _OUTLINE_ARRAYS if name in arrays}
        return Features(image, **{name: arrays.pop(name) for name in _ARRAYS}, mirrored=mirrored, **outlines,
                        coding=coding)  # fmt: skip
    except (OSError, ValueError, KeyError, EOFError, struct.error, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not a readable features file ({err})") from None


def _open_members(path: Path) -> dict[str, np.ndarray]:
    """Every array of an uncompressed `.npz`: the small ones (`_IN_MEMORY`) read, the others memory-mapped.

    `np.savez` stores each member uncompressed, so its `.npy` bytes lie in the file as they are: after the
    member's zip local header (30 bytes, then the name and extra field, whose lengths are the header's last
    two fields) and the `.npy` header comes the array's data, which `np.memmap` maps in place.
    """
    out = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as fh:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if name in _IN_MEMORY:
                with archive.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"array {name} is compressed (features files are written uncompressed)")
            fh.seek(info.header_offset)
            header = struct.unpack(zipfile.structFileHeader, fh.read(zipfile.sizeFileHeader))
            if header[0] != zipfile.stringFileHeader:
                raise ValueError(f"array {name}: no zip entry where the directory says")
            start = info.header_offset + zipfile.sizeFileHeader + header[-2] + header[-1]
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            if version not in _HEADER_READERS:
                raise ValueError(f"array {name}: .npy format {version}")
            shape, fortran, dtype = _HEADER_READERS[version](fh)
            if dtype.hasobject:
                raise ValueError(f"array {name} holds Python objects (pickles are not read)")
            offset, nbytes = fh.tell(), math.prod(shape) * dtype.itemsize
            if offset + nbytes > start + info.file_size:
                raise ValueError(f"array {name} is truncated")
            order = "F" if fortran else "C"
            out[name] = np.memmap(path, dtype, "r", offset, shape, order) if nbytes else np.zeros(shape, dtype)
    return out
