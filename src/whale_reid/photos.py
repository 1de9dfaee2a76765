"""Survey photos: which files are photos (by content), their order, their crop keys and content ids."""

from __future__ import annotations

import hashlib
import os
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from whale_core import InputError

#: Leading bytes of the photo formats a survey folder holds (JPEG, PNG, TIFF both byte orders, WebP/RIFF,
#: GIF, BMP): a file starting so is a photo even when it is too damaged for PIL to read its header.
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"RIFF", b"GIF8", b"BM")


def is_image_file(path: Path) -> bool:
    """True when the file's content is an image (PIL reads its header, or a known signature starts it).

    A header claiming too many pixels (PIL's `DecompressionBombError`) is an image too: it is listed, and
    `load_rgb` gives it its error row; one odd file never aborts the survey.
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(16).startswith(IMAGE_SIGNATURES):
                return True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path):
                return True
    except Image.DecompressionBombError:
        return True
    except (UnidentifiedImageError, ImportError, OSError, ValueError, SyntaxError, struct.error, EOFError):
        # ImportError: ultralytics patches Image.open to retry with an optional HEIF plugin that is absent
        return False


#: Bytes of a photo's key (its crop file stem): `<index>-<stem>` shortened so `<key>.jpg` and the atomic
#: writer's temporary name fit a 255-byte file name; the index keeps shortened keys unique.
KEY_BYTES = 160


def photo_key(index: int, path: Path) -> str:
    """The crop stem of the `index`-th readable photo: `00012-<file stem>`, at most KEY_BYTES bytes."""
    key = f"{index:05d}-{path.stem}".encode("utf-8", "surrogateescape")[:KEY_BYTES]
    return key.decode("utf-8", "ignore")


def find_photos(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The photos to identify: files as given, folders searched recursively for images (by content).

    A file named explicitly is kept even if it is not an image (it gets an error row); inside folders,
    files that are not images (notes, CSVs, sidecars) are skipped. Order: as given, folders sorted;
    a photo reached twice is listed once.

    Raises:
        InputError: a path that does not exist.
    """
    photos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            photos += [p for p in sorted(item.rglob("*")) if p.is_file() and is_image_file(p)]
        elif item.is_file():
            photos.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for photo in photos:
        if photo.resolve() not in seen:
            seen.add(photo.resolve())
            unique.append(photo)
    return unique


def content_id(path: Path) -> str:
    """The gallery image id a photo gets when enrolled: content hash + file name (same bytes → same id)."""
    return f"{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}-{path.name}"
