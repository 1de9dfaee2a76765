"""A synthetic identify result and gallery, for testing the review pages in seconds (no pipeline run).

The answers come from the real answer rule (`AnswerRule.apply`) on random neighbours, so `new_individual`
lands where the rule puts it; photos and gallery crops are small random JPEGs on disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from whale_reid.identify.queries import MATCH_COLUMNS, IdentifyResult, recommendation
from whale_reid.review.pages import REVIEW_DIR, write_review
from whale_reid.review.views import GalleryPhotos, ImageFolder, build_views
from whale_retrieval import AnswerRule, GalleryIndex

RULE = AnswerRule.from_dict({"threshold": 0.6, "k_neighbors": 12})
REGION = "fullbody"


def _jpeg(path: Path, rng: np.random.Generator, size=(200, 140)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=70)


def synthetic_run(
    root: Path, n_photos: int = 60, *, seed: int = 0, encounters: list[str] | None = None, stem: str = "p"
) -> tuple[IdentifyResult, GalleryIndex, Path]:
    """A result of `n_photos` photos against a 40-photo gallery of 15 individuals, its run folder `root/run`.

    The first photo's best neighbour scores below the threshold, so its rank 1 is `new_individual`; the second
    photo's best candidate is well above it while the rest are below, so its rank 2 is `new_individual` (the
    Kaggle hedge). Photos are named `<stem><i>.jpg`.
    """
    rng = np.random.default_rng(seed)
    labels = [f"ind{i % 15:02d}" for i in range(40)]
    gallery_dir, out = root / "gallery_crops", root / "run"
    ids = [f"g{i:03d}.jpg" for i in range(40)]
    for image_id in ids:
        _jpeg(gallery_dir / image_id, rng)
    emb = rng.normal(size=(40, 8)).astype(np.float32)
    gallery = GalleryIndex.build(emb / np.linalg.norm(emb, axis=1, keepdims=True), ids, labels, ["dolphin"] * 40)
    sims = np.sort(rng.uniform(0.3, 0.95, size=(n_photos, 12)), axis=1)[:, ::-1].astype(np.float32)
    sims[0] = np.linspace(0.55, 0.3, 12)  # photo 0: nothing above the threshold
    if n_photos > 1:
        sims[1] = np.r_[0.94, np.linspace(0.5, 0.3, 11)]  # photo 1: one candidate above it, new_individual at rank 2
    idx = np.stack([rng.permutation(40)[:12] for _ in range(n_photos)])
    answers = RULE.apply(sims, idx, gallery.labels, gallery.species)
    photos, rows, boxes = [], [], []
    for i in range(n_photos):
        key, photo = f"{i:05d}-{stem}{i}", root / "survey" / f"{stem}{i}.jpg"
        _jpeg(photo, rng, (320, 240))
        _jpeg(out / "crops" / REGION / "query" / f"{key}.jpg", rng)
        photos.append({"photo": str(photo), "key": key, "image_id": f"id-{i}", "species": "dolphin",
                       "path": str(photo), "encounter": encounters[i] if encounters else ""})  # fmt: skip
        boxes.append({"image": key, "region": REGION, "x1": 10, "y1": 10, "x2": 200, "y2": 150, "source": "detector"})
        call = recommendation(answers, i, False, float(answers.thresholds[i]))
        rows += [{"photo": str(photo), "rank": r, "individual_id": a, "error": "", **call}
                 for r, a in enumerate(answers.ids[i], start=1)]  # fmt: skip
    result = IdentifyResult(
        pd.DataFrame(rows).reindex(columns=MATCH_COLUMNS), pd.DataFrame(photos), np.zeros((n_photos, 8), "f4"),
        pd.DataFrame(boxes), answers.scores, answers.idx,
    )  # fmt: skip
    return result, gallery, gallery_dir


def write_synthetic_pages(
    root: Path, n_photos: int = 60, page_size: int = 25, run_id: str = "run0001", stem: str = "p"
) -> Path:
    """The synthetic run's review pages written into `root/run`; that folder."""
    result, gallery, gallery_dir = synthetic_run(root, n_photos, stem=stem)
    out = root / "run"

    def locate(image_id: str) -> Path | None:
        return gallery_dir / image_id if (gallery_dir / image_id).is_file() else None

    photos = GalleryPhotos(locate, ImageFolder(out / REVIEW_DIR))
    views = build_views(result, gallery, out / "crops", REGION, photos, None, RULE)
    write_review(out, views, run_id=run_id, note="new_individual below similarity 0.600", page_size=page_size)
    return out
