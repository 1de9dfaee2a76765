"""Self-contained HTML pages (no server, no CDN): the shared look, image embedding, safe escaping.

Every string that comes from a data file goes through `esc` (HTML) or `json_for_script` (data for
the page's script). The report embeds its images as data URIs; the review pages write theirs as files
beside the page (`whale_reid.review.pages`), so a survey's pages stay small. Both open from disk.
"""

from __future__ import annotations

import base64
import html
import io
import json
from importlib import resources
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageDraw

STYLE = (resources.files("whale_reid.common") / "assets" / "page.css").read_text(encoding="utf-8")


def esc(value: Any) -> str:
    """HTML-escape any value (quotes too), so ids like `<script>` render as text."""
    return html.escape(str(value), quote=True)


def url(path: str) -> str:
    """A page-relative path (or a `file:` URI, already encoded) as a URL: percent-encoded exactly once.

    A photo named `a#1 50%?.jpg` must reach the browser as `a%231%2050%25%3F.jpg`, or `#` starts a fragment
    and `%` an escape. `file:` URIs come from `Path.as_uri`, which encodes them already.
    """
    return path if path.startswith(("file:", "data:")) else quote(path, safe="/")


def json_for_script(obj: Any) -> str:
    """JSON safe to place inside a <script> element (no `</script>` or `<!--` can close it)."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def jpeg_bytes(img: Image.Image, max_side: int = 320, quality: int = 82) -> bytes:
    """`img` scaled to fit `max_side` (aspect ratio kept), encoded as JPEG (for a file or a data URI)."""
    img = img.convert("RGB")
    img.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def image_data_uri(img: Image.Image, max_side: int = 320, quality: int = 82) -> str:
    """A JPEG data URI of `img` scaled to fit `max_side` (aspect ratio kept)."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(img, max_side, quality)).decode("ascii")


def draw_boxes(img: Image.Image, boxes: list[tuple[str, float, float, float, float]]) -> Image.Image:
    """A copy of `img` with labelled rectangles (label, x1, y1, x2, y2) drawn on it."""
    colours = {"fullbody": (62, 207, 142), "backfin": (245, 166, 35)}
    out = img.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 200))
    for label, x1, y1, x2, y2 in boxes:
        colour = colours.get(label, (239, 91, 91))
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        draw.text((x1 + width, y1 + width), label, fill=colour)
    return out


def page(title: str, body: str, script: str = "") -> str:
    """A complete HTML document with the shared style."""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}"
        + (f"<script>{script}</script>" if script else "")
        + "</body></html>\n"
    )
