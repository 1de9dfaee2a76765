"""A contact sheet of demo photos (true boxes on some, species and id under each) for the docs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from whale_core import atomic_path, load_rgb, read_table, resolve_image_path
from whale_reid.demo.species import canonical_name

TILE_PX = (256, 180)
CAPTION_PX = 30
BOX_COLORS = {"fullbody": (255, 64, 64), "backfin": (64, 255, 96)}


def _photos(raw_dir: Path, n: int) -> pd.DataFrame:
    """`n` photos spread over species: round-robin over species, train before test, names sorted."""
    train = read_table(raw_dir / "train.csv").assign(split="train")
    test = read_table(raw_dir / "test_labels.csv").assign(split="test")
    photos = pd.concat([train, test], ignore_index=True)
    photos["species"] = photos["species"].map(canonical_name)
    photos = photos.sort_values(["split", "image"], ascending=[False, True])
    photos["rank"] = photos.groupby("species").cumcount()
    return photos.sort_values(["rank", "species"], kind="stable").head(n)


def render_contact_sheet(raw_dir: Path, out_png: Path, n: int = 12, columns: int = 4) -> Path:
    """Draw `n` photos of a demo folder in a grid; every other one shows its true boxes.

    Args:
        raw_dir: a folder written by `generate_demo` (needs train.csv, test_labels.csv, boxes.csv).
        out_png: where the PNG goes (written atomically).
        n: number of photos.
        columns: photos per row.

    Returns:
        `out_png`.
    """
    raw_dir, out_png = Path(raw_dir), Path(out_png)
    boxes = read_table(raw_dir / "boxes.csv").astype({c: float for c in ("x1", "y1", "x2", "y2")})
    photos = _photos(raw_dir, n)
    rows = -(-len(photos) // columns)
    sheet = Image.new("RGB", (columns * TILE_PX[0], rows * (TILE_PX[1] + CAPTION_PX)), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    for k, photo in enumerate(photos.itertuples()):
        image = load_rgb(resolve_image_path(raw_dir / f"{photo.split}_images", photo.image))
        scale = min(TILE_PX[0] / image.width, TILE_PX[1] / image.height)
        tile = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.LANCZOS)
        x0, y0 = (k % columns) * TILE_PX[0], (k // columns) * (TILE_PX[1] + CAPTION_PX)
        sheet.paste(tile, (x0, y0))
        if (k + k // columns) % 2 == 0:  # a checkerboard, so every column shows boxes somewhere
            for box in boxes[boxes["image"] == photo.image].itertuples():
                corners = [x0 + box.x1 * scale, y0 + box.y1 * scale, x0 + box.x2 * scale, y0 + box.y2 * scale]
                draw.rectangle(corners, outline=BOX_COLORS[box.region], width=2)
        draw.text((x0 + 4, y0 + TILE_PX[1] + 2), f"{photo.species}", fill=(20, 20, 20))
        draw.text((x0 + 4, y0 + TILE_PX[1] + 15), f"{photo.individual_id} ({photo.split})", fill=(90, 90, 90))
    with atomic_path(out_png) as tmp:
        sheet.save(tmp, format="PNG")
    return out_png
