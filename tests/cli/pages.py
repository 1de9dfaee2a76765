"""Reading the review pages' files: every file a page references."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

FILE_KEYS = {"images", "evidence", "crop", "original", "originals", "href"}  #: the page data's file references


def _strings(value, key: str = "") -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, k)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, key)]
    return [value] if isinstance(value, str) and key in FILE_KEYS and value else []


def referenced_files(page: Path) -> list[Path]:
    """Every file a page references: src/href attributes of its HTML and the paths in its data, resolved."""
    text = page.read_text(encoding="utf-8")
    data = json.loads(re.search(r"<script id='review-data' type='application/json'>(.*?)</script>", text).group(1))
    markup = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    refs = re.findall(r"(?:src|href)='([^']+)'", markup)
    refs += _strings(data)
    paths = []
    for ref in refs:
        if ref.startswith("file://"):
            paths.append(Path(unquote(urlparse(ref).path)))
        elif not ref.startswith(("#", "data:")):
            paths.append((page.parent / unquote(ref)).resolve())
    return paths
