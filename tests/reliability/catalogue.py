"""A small gallery repo and identify folder made by the tests, for enroll without the tiny pipeline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from whale_reid.catalogue.run_folder import RunFolder
from whale_reid.catalogue.versions import BASE_GALLERY, QUERY_EMBEDDINGS, gallery_fingerprint
from whale_retrieval import GalleryIndex

DIM = 8


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_repo(root: Path) -> Path:
    """`root` with a saved `models/gallery` of 6 photos of 3 individuals."""
    GalleryIndex.build(
        unit_rows(6, 0), [f"g{i}.jpg" for i in range(6)], [f"id{i % 3}" for i in range(6)], ["beluga"] * 6,
        settings={"threshold": 0.5, "k_neighbors": 3},
    ).save(root / BASE_GALLERY)  # fmt: skip
    return root


def write_query_file(out: Path, repo: Path, image_ids: list[str], crops: list[str], run_id: str = "") -> Path:
    """`query_embeddings.npz` as identify writes it, with the given image ids and crop paths."""
    n = len(image_ids)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / QUERY_EMBEDDINGS, "wb") as fh:
        np.savez(
            fh, photo=np.asarray([f"survey/p{i}.jpg" for i in range(n)]), image_id=np.asarray(image_ids),
            species=np.asarray(["beluga"] * n), crop=np.asarray(crops), emb=unit_rows(n, 1),
            base_fingerprint=np.asarray(gallery_fingerprint(repo / BASE_GALLERY)), run_id=np.asarray(run_id),
        )  # fmt: skip
    return out / QUERY_EMBEDDINGS


def write_run(out: Path, repo: Path, image_ids: list[str], crops: list[str], shade: int = 90) -> str:
    """A complete identify run folder (through `RunFolder`, as the CLI writes it): crops, npz, page, run.json.

    A crop named `link.jpg` is made a symlink to `<out's parent>/secret.txt`.
    """
    with RunFolder(out) as run:
        for crop in crops:
            if crop.endswith("link.jpg"):
                (run.path / crop).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(out.parent / "secret.txt", run.path / crop)
            elif not Path(crop).is_absolute() and ".." not in crop:
                write_crop(run.path / crop, shade)
        write_query_file(run.path, repo, image_ids, crops, run.run_id)
        (run.path / "review.html").write_text(f"<p>run {run.run_id}</p>")
        run.commit()
    return run.run_id


def write_crop(path: Path, shade: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), (shade, shade, shade)).save(path)
    return path


def write_decisions(path: Path, n: int) -> Path:
    """Every query photo enrolled as a new individual `new<i>`."""
    photos, ids = [f"survey/p{i}.jpg" for i in range(n)], [f"new{i}" for i in range(n)]
    pd.DataFrame({"photo": photos, "decision": "new", "individual_id": ids}).to_csv(path, index=False)
    return path
