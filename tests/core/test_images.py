"""Every kind of photo a survey folder holds, through `load_rgb` / `verify_image`."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from whale_core import ImageLoadError, InputError, load_rgb, resolve_image_path, verify_image


def _rgb(w=40, h=30):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_grayscale_and_cmyk_jpeg_become_rgb(tmp_path):
    _rgb().convert("L").save(tmp_path / "g.jpg")
    _rgb().convert("CMYK").save(tmp_path / "c.jpg")
    for name in ("g.jpg", "c.jpg"):
        img = load_rgb(tmp_path / name)
        assert img.mode == "RGB" and img.size == (40, 30)


def test_png_with_alpha_is_composited_on_black(tmp_path):
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:5, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    arr = np.asarray(load_rgb(tmp_path / "a.png"))
    assert (arr[:5, :, 0] == 200).all() and (arr[5:] == 0).all()


def test_16bit_png_scaled_to_8bit(tmp_path):
    arr16 = np.full((8, 8), 65535, dtype=np.uint16)
    arr16[:4] = 0
    Image.fromarray(arr16).save(tmp_path / "deep.png")
    arr = np.asarray(load_rgb(tmp_path / "deep.png"))
    assert arr.shape == (8, 8, 3) and arr[:4].max() == 0 and arr[4:].min() == 255


def test_png_bytes_behind_jpg_name(tmp_path):
    _rgb().save(tmp_path / "really_png.jpg", format="PNG")
    assert load_rgb(tmp_path / "really_png.jpg").size == (40, 30)


def test_exif_rotation_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    _rgb(40, 30).save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").size == (30, 40)
    assert verify_image(tmp_path / "rot.jpg") == (30, 40)


def test_one_pixel_image_is_valid(tmp_path):
    _rgb(1, 1).save(tmp_path / "dot.jpg")
    assert load_rgb(tmp_path / "dot.jpg").size == (1, 1)


def _png_header_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims a huge size; the guard must refuse it before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("reader", [load_rgb, verify_image])
def test_broken_files_name_the_file(tmp_path, reader):
    good = tmp_path / "good.jpg"
    _rgb(200, 200).save(good, quality=95)
    cases = {
        "truncated.jpg": good.read_bytes()[: len(good.read_bytes()) // 2],
        "empty.jpg": b"",
        "text.jpg": b"this is not a photo\n",
        "bomb.png": _png_header_claiming(20000, 20000),
    }
    reasons = {"truncated.jpg": "corrupt or truncated", "empty.jpg": "empty file", "text.jpg": "not an image",
               "bomb.png": "decompression-bomb guard"}  # fmt: skip
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageLoadError, match=name.replace(".", r"\.") + ".*" + reasons[name]):
            reader(tmp_path / name)
    with pytest.raises(ImageLoadError, match="not found"):
        reader(tmp_path / "missing.jpg")


def test_resolve_image_path_refuses_escapes(tmp_path):
    assert resolve_image_path(tmp_path, "a b/ü.jpg") == tmp_path / "a b" / "ü.jpg"
    for name in ("../x.jpg", "a/../../x.jpg", "/etc/passwd", "", "C:\\x.jpg"):
        with pytest.raises(InputError):
            resolve_image_path(tmp_path, name)


def test_a_non_image_is_refused_even_after_ultralytics_patched_pil(tmp_path):
    """Importing ultralytics replaces PIL.Image.open with a version that retries unidentified files through an
    optional HEIF plugin; without the plugin that retry raises ModuleNotFoundError — still 'not an image'."""
    import ultralytics  # noqa: F401  (the import applies the patch)

    from whale_core import ImageLoadError, load_rgb

    bogus = tmp_path / "notes.jpg"
    bogus.write_text("weather: calm\n")
    with pytest.raises(ImageLoadError, match="not an image file"):
        load_rgb(bogus)
