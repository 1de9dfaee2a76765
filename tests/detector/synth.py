"""Photos drawn for the detector tests: a dark ellipse (fullbody) with a triangle fin on top, on noise.

The true boxes are known exactly from the drawing, so detection, labels and crops can be checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw


def draw_photo(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, list[tuple]]:
    """One photo and its boxes [(region, x1, y1, x2, y2)] (x2/y2 exclusive)."""
    noise = rng.integers(40, 120, size=(height, width, 3), dtype=np.uint8)
    noise[..., 2] = np.clip(noise[..., 2].astype(int) + 60, 0, 255)  # bluish water
    img = Image.fromarray(noise)
    draw = ImageDraw.Draw(img)
    body_w = int(rng.uniform(0.45, 0.75) * width)
    body_h = int(rng.uniform(0.18, 0.3) * height)
    x1 = int(rng.uniform(0.02, 0.98) * (width - body_w))
    y1 = int(rng.uniform(0.35, 0.9) * (height - body_h))
    shade = tuple(int(v) for v in rng.integers(10, 40, size=3))
    draw.ellipse([x1, y1, x1 + body_w - 1, y1 + body_h - 1], fill=shade)
    fin_w = int(body_w * rng.uniform(0.15, 0.25))
    fin_h = int(min(y1 + body_h // 2, body_h * rng.uniform(0.9, 1.4)))
    fx = x1 + int(body_w * rng.uniform(0.35, 0.55))
    fy = y1 + body_h // 2
    draw.polygon([(fx, fy), (fx + fin_w - 1, fy), (fx + fin_w // 3, fy - fin_h)], fill=(230, 230, 230))
    body = ("fullbody", x1, min(y1, fy - fin_h), x1 + body_w, y1 + body_h)
    fin = ("backfin", fx, fy - fin_h, fx + fin_w, fy + 1)
    return img, [body, fin]


def make_photos(folder: Path, n: int, *, seed: int = 0, size: tuple[int, int] = (160, 120)) -> pd.DataFrame:
    """Write `n` JPEGs `p000.jpg`… into `folder`; return their boxes table (image,region,x1,y1,x2,y2)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        img, boxes = draw_photo(rng, *size)
        name = f"p{i:03d}.jpg"
        img.save(folder / name, quality=95)
        rows += [(name, *box) for box in boxes]
    return pd.DataFrame(rows, columns=["image", "region", "x1", "y1", "x2", "y2"])
