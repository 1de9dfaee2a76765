"""`generate_demo`: render the population and write it in the Kaggle layout (plus boxes and the truth)."""

from __future__ import annotations

import io
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from whale_core import NEW_INDIVIDUAL, InputError, atomic_write_bytes, atomic_write_csv
from whale_reid.demo.config import PHOTO_TYPES, DemoConfig
from whale_reid.demo.photo_types import draw_photo_type, render_typed_photo
from whale_reid.demo.population import IMAGE_NAME_HEX, Individual, make_population, plan_photos, unique_hex
from whale_reid.demo.species import CATALOGUE, typos_of

log = logging.getLogger(__name__)

#: Share of a species' train rows labelled with one of Kaggle's misspellings (at least one row each).
TYPO_SHARE = 0.05
#: Names `generate_demo` writes into its folder; it refuses a folder that already holds any of them.
OUTPUT_NAMES = (
    "train.csv",
    "test_labels.csv",
    "sample_submission.csv",
    "boxes.csv",
    "train_images",
    "test_images",
)


@dataclass(frozen=True)
class DemoSummary:
    """Counts of what `generate_demo` wrote (the stage's metrics); `photo_type_counts`: photos per photo type."""

    n_train_photos: int
    n_test_photos: int
    n_individuals: int
    n_train_individuals: int
    n_species: int
    n_new_test_photos: int
    n_singletons: int
    n_typo_rows: int
    photo_type_counts: dict[str, int] = field(default_factory=dict)

    @property
    def test_new_share(self) -> float:
        """Share of test photos whose animal has no train photo."""
        return self.n_new_test_photos / max(self.n_test_photos, 1)

    def counts(self) -> dict[str, int | float]:
        """The counts as the demo stage's summary file holds them."""
        return {
            "photos": self.n_train_photos + self.n_test_photos,
            "train_photos": self.n_train_photos,
            "test_photos": self.n_test_photos,
            "individuals": self.n_individuals,
            "train_individuals": self.n_train_individuals,
            "species": self.n_species,
            "singleton_individuals": self.n_singletons,
            "typo_species_labels": self.n_typo_rows,
            "test_new_share": round(self.test_new_share, 4),
            **{f"{name}_photos": self.photo_type_counts.get(name, 0) for name in PHOTO_TYPES},
        }


def _encode_jpeg(image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=2, optimize=False, progressive=False)
    return buffer.getvalue()


def _species_labels(plan: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    """Train species labels: the true name, except a few rows per species that get a Kaggle typo."""
    labels = plan["species"].astype(object).copy()
    for species in CATALOGUE:
        typos = typos_of(species)
        rows = plan.index[(plan["split"] == "train") & (plan["species"] == species.name)].to_numpy()
        if not typos or rows.size == 0:
            continue
        n_typo = max(len(typos), int(round(TYPO_SHARE * rows.size)))
        chosen = np.sort(rng.choice(rows, size=min(n_typo, rows.size), replace=False))
        labels.loc[chosen] = [typos[i % len(typos)] for i in range(chosen.size)]
    return labels


def _render_all(
    cfg: DemoConfig, plan: pd.DataFrame, population: list[Individual], out_dir: Path
) -> tuple[list[dict], list[str]]:
    """Render and write every photo of `plan`; returns the box rows and each photo's type, in plan order."""
    boxes, types = [], []
    shares = cfg.photo_type_weights()
    for row in tqdm(plan.itertuples(), total=len(plan), desc="demo photos", unit="photo", disable=None):
        ind = population[row.individual]
        species = CATALOGUE[ind.species_index]
        photo_type = draw_photo_type(shares, np.random.default_rng([cfg.seed, 3, row.Index]), species)
        rng = np.random.default_rng([cfg.seed, 1, row.Index])  # the photo's own stream
        photo = render_typed_photo(photo_type, ind, species, rng, cfg.image_size, cfg.difficulty)
        types.append(photo_type)
        folder = out_dir / f"{row.split}_images"
        atomic_write_bytes(folder / row.image, _encode_jpeg(photo.image, photo.jpeg_quality))
        for region, box in (("fullbody", photo.fullbody), ("backfin", photo.backfin)):
            boxes.append({"image": row.image, "region": region, "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3]})
    return boxes, types


def clear_outputs(out_dir: Path) -> None:
    """Delete what `generate_demo` wrote into `out_dir` before (only the demo's own file and folder names)."""
    for name in OUTPUT_NAMES:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def generate_demo(cfg: DemoConfig, out_dir: Path, *, replace: bool = False) -> DemoSummary:
    """Render the demo population into `out_dir` in the Kaggle layout.

    Writes train.csv, train_images/, test_images/, test_labels.csv (the hidden truth, with
    `new_individual` for animals absent from train), sample_submission.csv and boxes.csv
    (fullbody and backfin for every image). Same config → byte-identical files.

    Args:
        replace: first delete the demo's own outputs of an earlier run (`clear_outputs`), as DVC does.

    Raises:
        InputError: if `out_dir` already holds demo outputs and `replace` is off (nothing is deleted then,
            so a real Kaggle folder can never be overwritten by mistake).
    """
    out_dir = Path(out_dir)
    if replace:
        clear_outputs(out_dir)
    existing = [name for name in OUTPUT_NAMES if (out_dir / name).exists()]
    if existing:
        raise InputError(f"{out_dir / existing[0]}: already exists; generate_demo writes only into a clean folder")
    rng = np.random.default_rng([cfg.seed, 0])
    population = make_population(cfg, rng)
    plan = plan_photos(cfg, rng)
    plan["image"] = [f"{name}.jpg" for name in unique_hex(rng, len(plan), IMAGE_NAME_HEX)]
    plan["individual_id"] = [population[i].individual_id for i in plan["individual"]]
    plan["species"] = [CATALOGUE[population[i].species_index].name for i in plan["individual"]]
    plan["label"] = _species_labels(plan, rng)
    boxes, plan["photo_type"] = _render_all(cfg, plan, population, out_dir)
    (out_dir / "test_images").mkdir(parents=True, exist_ok=True)
    (out_dir / "train_images").mkdir(parents=True, exist_ok=True)
    summary = _write_tables(plan, pd.DataFrame(boxes), out_dir, cfg)
    log.info(
        "demo data in %s: %d train + %d test photos, %d individuals (%d in train), %d species, "
        "new share of test %.3f, %d singletons, %d typo labels",
        out_dir, summary.n_train_photos, summary.n_test_photos, summary.n_individuals,
        summary.n_train_individuals, summary.n_species, summary.test_new_share, summary.n_singletons,
        summary.n_typo_rows,
    )  # fmt: skip
    return summary


def _write_tables(plan: pd.DataFrame, boxes: pd.DataFrame, out_dir: Path, cfg: DemoConfig) -> DemoSummary:
    train = plan[plan["split"] == "train"].sort_values("image")
    test = plan[plan["split"] == "test"].sort_values("image")
    atomic_write_csv(
        out_dir / "train.csv",
        pd.DataFrame({"image": train["image"], "species": train["label"], "individual_id": train["individual_id"]}),
    )
    truth = np.where(test["is_new"], NEW_INDIVIDUAL, test["individual_id"])
    atomic_write_csv(
        out_dir / "test_labels.csv",
        pd.DataFrame({"image": test["image"], "individual_id": truth, "species": test["species"]}),
    )
    counts = train["individual_id"].value_counts()
    top5 = sorted(counts.index, key=lambda ind_id: (-counts[ind_id], ind_id))[:5]
    atomic_write_csv(
        out_dir / "sample_submission.csv", pd.DataFrame({"image": test["image"], "predictions": " ".join(top5)})
    )
    atomic_write_csv(out_dir / "boxes.csv", boxes.sort_values(["image", "region"], kind="stable"))
    photos_per_animal = plan["individual"].value_counts()
    return DemoSummary(
        n_train_photos=len(train),
        n_test_photos=len(test),
        n_individuals=cfg.n_individuals,
        n_train_individuals=int(train["individual_id"].nunique()),
        n_species=int(plan["species"].nunique()),
        n_new_test_photos=int(test["is_new"].sum()),
        n_singletons=int((photos_per_animal <= 2).sum()),
        n_typo_rows=int((train["label"] != train["species"]).sum()),
        photo_type_counts={name: int((plan["photo_type"] == name).sum()) for name in PHOTO_TYPES},
    )
