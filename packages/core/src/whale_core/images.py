"""Safe image loading: every photo the project reads goes through `load_rgb`.

Handles what real survey folders contain — EXIF-rotated JPEGs, grayscale, CMYK, palette and
alpha PNGs, 16-bit PNGs, PNG bytes behind a .jpg name — and refuses what it must (corrupt or
truncated files, text files, decompression bombs) with an `ImageLoadError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from whale_core.errors import InputError
from whale_core.paths import NAME_MAX

#: Largest photo accepted, in pixels (≈ 12k × 8k). Larger ones are refused before decoding.
MAX_IMAGE_PIXELS = 100_000_000
_EXIF_ORIENTATION = 0x0112  #: the EXIF tag holding the orientation (1-8)


class ImageLoadError(InputError):
    """A photo that cannot be used; the message starts with its path."""


def resolve_image_path(images_dir: str | os.PathLike[str], name: str) -> Path:
    """Join an image name from a CSV onto its folder, refusing names that escape the folder.

    Args:
        images_dir: the folder the CSV's names are relative to.
        name: the image name as written in the CSV (may contain sub-folders).

    Raises:
        InputError: for empty, absolute or `..`-containing names, and names no filesystem can hold.
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"empty image name (images folder {images_dir})")
    if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise InputError(f"image name {name!r} is an absolute path; names must be relative to {images_dir}")
    parts = Path(name.replace("\\", "/")).parts
    if ".." in parts:
        raise InputError(f"image name {name!r} would escape the images folder {images_dir}")
    if "\0" in name or any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in parts):
        raise InputError(f"image name {name[:60]!r}… is not a possible file name (a NUL, or over {NAME_MAX} bytes)")
    return Path(images_dir) / name


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 0.0
        scale = 255.0 / 65535.0 if hi > 255 else 1.0
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", img.size, (0, 0, 0))
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        return background
    return img.convert("RGB")


@contextlib.contextmanager
def _open_checked(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """Open `path` for decoding inside the block; every failure becomes an `ImageLoadError` naming the file."""
    if not path.is_file():
        raise ImageLoadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageLoadError(
                        f"{path}: {width}x{height} pixels exceeds {max_pixels:,} (decompression-bomb guard)"
                    )
                if width < 1 or height < 1:
                    raise ImageLoadError(f"{path}: image has no pixels")
                yield img
    except ImageLoadError:
        raise
    except (UnidentifiedImageError, ImportError):
        # ImportError: ultralytics patches PIL.Image.open to retry an unidentified file with an optional HEIF
        # plugin, which is not installed (offline: never auto-installed) — the file is still not an image.
        raise ImageLoadError(f"{path}: not an image file (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"{path}: image is too large (decompression-bomb guard)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{path}: corrupt or truncated image ({err})") from None


def load_rgb(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open a photo as an upright 8-bit RGB image.

    EXIF orientation is applied; alpha is composited on black; 16-bit channels are scaled to 8 bits.

    Args:
        path: the photo's path (format is sniffed from the bytes, not the name).
        max_pixels: refuse photos with more pixels than this (decompression-bomb guard).

    Raises:
        ImageLoadError: missing, empty, not an image, truncated/corrupt, or too large; the message
            starts with the path.
    """
    with _open_checked(Path(path), max_pixels) as img:
        img.load()
        return _to_rgb(ImageOps.exif_transpose(img) or img)


def _upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of an open image as `load_rgb` returns it: EXIF orientations 5-8 swap the sides."""
    width, height = img.size
    return (height, width) if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8) else (width, height)


def image_size(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """A photo's upright (width, height) as `load_rgb` will return it, read from the header only (no decoding).

    Raises:
        ImageLoadError: missing, empty, not an image or too large, naming the file.
    """
    with _open_checked(Path(path), max_pixels) as img:
        return _upright_size(img)


def verify_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """Check that a photo decodes, cheaply (JPEGs decode at 1/8 scale), and return its upright (width, height).

    Raises:
        ImageLoadError: as `load_rgb` would, naming the file.
    """
    with _open_checked(Path(path), max_pixels) as img:
        size = _upright_size(img)
        if img.format == "JPEG":
            width, height = img.size
            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
        img.load()
    return size
