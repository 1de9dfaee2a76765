"""Survey photos: which files are photos (by content), their order, their crop keys, content ids and names."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from whale_core import InputError

log = logging.getLogger(__name__)

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


#: Any character but a letter, digit, `_` or `-` (dots, spaces, `#?%`, backslashes, the surrogates that stand for
#: bytes that are not UTF-8): replaced in crop keys, so `<key>.jpg` is a plain name for every reader and page.
KEY_UNSAFE = re.compile(r"[^\w-]")
#: What a gallery image id may not hold: folder separators, control characters and non-UTF-8 bytes (surrogates).
ID_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` as it can be written to a UTF-8 file: bytes of a name that are not UTF-8 become `\\xNN`."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def photo_text(path: Path) -> str:
    """How a photo is named in matches.csv, the npz, the pages and the decisions file (`printable` path)."""
    return printable(str(path))


def photo_key(index: int, path: Path) -> str:
    """The crop stem of the `index`-th readable photo: `00012-<file stem>`, at most KEY_BYTES bytes.

    Characters other than letters, digits, `_` and `-` become `_` (the index keeps keys unique): a dot would
    be read as the crop's suffix, a backslash or a non-UTF-8 byte cannot be written to a page or a CSV.
    """
    key = f"{index:05d}-{KEY_UNSAFE.sub('_', path.stem)}".encode()[:KEY_BYTES]
    return key.decode("utf-8", "ignore")


def _outputs(out: Path | None) -> list[Path]:
    """identify's own folders for `--out`: the folder and its hidden staging, set-aside and lock siblings."""
    if out is None:
        return []
    out = Path(out).absolute()
    return [out, *out.parent.glob(f".{out.name}.*")]


def _within(path: Path, folders: Sequence[Path]) -> bool:
    real = path.resolve()
    return any(real == f.resolve() or f.resolve() in real.parents for f in folders)


def find_photos(inputs: Sequence[str | os.PathLike[str]], out: Path | None = None) -> list[Path]:
    """The photos to identify: files as given, folders searched recursively for images (by content).

    A file named explicitly is kept even if it is not an image (it gets an error row); inside folders,
    files that are not images (notes, CSVs, sidecars) are skipped. Order: as given, folders sorted;
    a photo reached twice is listed once. Nothing under `out` (identify's output folder, with its hidden
    staging siblings) is ever a photo: a run into a folder of the survey must not identify its own crops.

    Raises:
        InputError: a path that does not exist.
    """
    own = _outputs(out)
    photos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            photos += [p for p in sorted(item.rglob("*")) if p.is_file() and not _within(p, own) and is_image_file(p)]
        elif item.is_file():
            photos.append(item)
        else:
            raise InputError(f"{printable(str(item))}: no such file or folder")
    left_out = [p for p in photos if _within(p, own)]
    if left_out:
        log.warning("%s: %d files inside the output folder are not survey photos (left out)", out, len(left_out))
    seen: set[Path] = set()
    unique = []
    for photo in photos:
        if photo.resolve() not in seen and not _within(photo, own):
            seen.add(photo.resolve())
            unique.append(photo)
    return unique


def content_id(path: Path) -> str:
    """The gallery image id a photo gets when enrolled: content hash + file name (same bytes → same id).

    Characters a file name may hold but an id may not (a backslash, control characters, bytes that are not
    UTF-8) become `_`, so the id is a plain file name that every CSV and page can hold.
    """
    return f"{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}-{ID_UNSAFE.sub('_', path.name)}"
