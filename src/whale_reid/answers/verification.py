"""Local-feature evidence for the answer path: the `match` params section, the feature cache, shortlist pairs.

Composed once here (the wildlife-tools way: extractor → similarity → calibrated classifier), used by the
`local_features`, `tune` and `predict` stages and by `whale-reid identify`:

- `MatchConfig` is params.yaml `match`: on/off, the shortlist size, the regions, the calibrator and the
  `whale_matcher.MatcherConfig` of the keypoints.
- `features/<region>/<split>.npz` hold every crop's keypoints + descriptors (`whale_matcher.save_features`).
- `shortlist_evidence` verifies each query against its first `shortlist` neighbours in every region and
  returns the inlier counts as the `[n_query, shortlist]` columns `AnswerRule.apply` takes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from whale_core import REGIONS, Config, ConfigError, InputError, atomic_link, file_sha256
from whale_matcher import Features, MatcherConfig, load_features, outline_distance, verify_pairs
from whale_retrieval.calibration import SIMILARITY, CalibrationError, PairCalibrator
from whale_retrieval.fusion import fit_fusion
from whale_retrieval.postprocess import StackedNeighbours

log = logging.getLogger(__name__)

FEATURES_DIR = Path("features")


@dataclasses.dataclass(frozen=True)
class MatchConfig(Config):
    """params.yaml `match`: local-feature verification of the global shortlist and its calibrated fusion.

    Attributes:
        enabled: off reproduces the similarity-only answers exactly.
        shortlist: gallery photos verified per query (the first neighbours of the global ranking).
        regions: the crops matched; each gives one evidence input `inliers_<region>`.
        calibrator: "logistic" (one model over all inputs) or "isotonic" (per input, averaged).
        use_similarity: the global similarity is an input of the calibrator too.
        local_inputs: per region, which inlier numbers the calibrator sees: "inliers" (the count) and/or
            "excess" (the count above the median of the query's shortlist: `whale_retrieval.answers.with_excess`).
        outline_regions: the regions whose fin outline is traced and compared (`whale_matcher.outline`); each
            gives the inputs `outline_<region>` (minus the outline distance; missing where either photo has no
            traced fin) and `traced_<region>` (1 where both were traced), so a pair without a fin outline gets no
            outline evidence rather than evidence for "different".
        outline_skip_species: species without a dorsal fin: their gallery photos carry no outline (what GrabCut
            finds on a beluga's back is not a fin), so their pairs get no outline evidence.
        features: keypoints, matching and geometric verification (`whale_matcher.MatcherConfig`).
    """

    SECTION = "match"
    RANGES = {"shortlist": ">= 1"}
    enabled: bool = False
    shortlist: int = 50
    regions: tuple[str, ...] = REGIONS
    calibrator: Literal["logistic", "isotonic"] = "logistic"
    use_similarity: bool = True
    local_inputs: tuple[Literal["inliers", "excess"], ...] = ("excess",)
    outline_regions: tuple[str, ...] = ()
    outline_skip_species: tuple[str, ...] = ("beluga",)
    features: MatcherConfig = MatcherConfig()

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [r for r in self.regions if r not in REGIONS]
        if unknown or not self.regions:
            raise ConfigError(f"match.regions: {unknown or 'empty'} — choose from {list(REGIONS)}")
        if not self.local_inputs:
            raise ConfigError("match.local_inputs: name at least one of inliers, excess")
        stray = [r for r in self.outline_regions if r not in self.regions]
        if stray:
            raise ConfigError(f"match.outline_regions: {stray} are not among match.regions {list(self.regions)}")

    @property
    def evidence_names(self) -> tuple[str, ...]:
        """The calibrator's inputs, in order."""
        local = tuple(f"{kind}_{region}" for region in self.regions for kind in self.local_inputs)
        outline = tuple(f"{kind}_{region}" for region in self.outline_regions for kind in ("outline", "traced"))
        return (SIMILARITY,) * self.use_similarity + local + outline

    def region_features(self, region: str) -> MatcherConfig:
        """What `region`'s crops are extracted with: the keypoints, plus the fin outline where it is compared."""
        return self.features.replace(outline=region in self.outline_regions)


def features_path(region: str, split: str, features_dir: Path = FEATURES_DIR) -> Path:
    """Where the local_features stage keeps a split's features of one region."""
    return features_dir / region / f"{split}.npz"


def load_feature_sets(split: str, regions: Sequence[str], features_dir: Path = FEATURES_DIR) -> dict[str, Features]:
    """The cached features of a split, one `Features` per region."""
    return {region: load_features(features_path(region, split, features_dir)) for region in regions}


def gallery_features_path(gallery_dir: Path, region: str) -> Path:
    return gallery_dir / f"features_{region}.npz"


#: The gallery setting recording the sha256 of each region's `features_<region>.npz` beside it (checked on read).
FEATURES_SHA256 = "features_sha256"


def save_gallery_features(
    gallery_dir: Path, regions: Sequence[str], features_dir: Path = FEATURES_DIR
) -> dict[str, str]:
    """Put the train photos' features beside a gallery (what `whale-reid identify` verifies against).

    Hard-linked where the filesystem allows (a Kaggle-size file is not written twice), else copied.

    Returns:
        region → sha256 of the file placed: record it in the gallery's settings (FEATURES_SHA256), saved after.
    """
    digests = {}
    for region in regions:
        placed = atomic_link(features_path(region, "train", features_dir), gallery_features_path(gallery_dir, region))
        digests[region] = file_sha256(placed)
    return digests


def feature_rows(features: Features) -> dict[str, int]:
    """Image id → row of `features` (build it once where many images are looked up)."""
    return {str(image): n for n, image in enumerate(features.image.tolist())}


def row_lookup(features: Features, images: Sequence[str], what: str, *, allow_missing: bool = False) -> np.ndarray:
    """Row of each image in `features`; -1 for an image without features when `allow_missing`.

    Raises:
        InputError: naming the first image that has no features (unless `allow_missing`).
    """
    rows = feature_rows(features)
    missing = [str(i) for i in images if str(i) not in rows]
    if missing and not allow_missing:
        raise InputError(f"{what}: no local features for image {missing[0]!r} (re-run the local_features stage)")
    return np.asarray([rows.get(str(i), -1) for i in images], dtype=np.int64)


def shortlist_evidence(
    query: Mapping[str, Features],
    gallery: Mapping[str, Features],
    query_images: Sequence[str],
    gallery_images: Sequence[str],
    idx: np.ndarray,
    width: int,
    cfg: MatchConfig,
    *,
    progress: bool = True,
    allow_missing_gallery: bool = False,
) -> dict[str, np.ndarray]:
    """Inliers of every query against its first `width` neighbours, per region.

    Args:
        query, gallery: features per region; rows are found by image id.
        query_images: image id of each query row of `idx`; gallery_images: of each gallery row.
        idx: [n, k] neighbour gallery rows, best first (-1 = none).
        width: neighbours verified per query (`AnswerRule.shortlist_columns`).
        allow_missing_gallery: a gallery photo without features (enrolled after the pipeline ran) counts 0
            inliers instead of being an error.

    Returns:
        `inliers_<region>` → int32 [n, width] (0 where there is no neighbour) and, per outline region,
        `outline_<region>` → float64 [n, width], minus the outline distance (NaN where not comparable).
    """
    idx = np.asarray(idx)[:, :width]
    q_pos, col = np.nonzero(idx >= 0)
    gallery_rows = idx[q_pos, col]
    evidence = {}
    used = np.unique(gallery_rows)
    for region in cfg.regions:
        q_rows = row_lookup(query[region], query_images, f"{region} queries")[q_pos]
        g_found = row_lookup(gallery[region], [str(gallery_images[g]) for g in used], f"{region} gallery",
                             allow_missing=allow_missing_gallery)  # fmt: skip
        g_rows = g_found[np.searchsorted(used, gallery_rows)]
        has = g_rows >= 0
        pairs = np.stack([q_rows[has], g_rows[has]], axis=1)
        found = verify_pairs(query[region], gallery[region], pairs, cfg.features, progress=progress)
        inliers = np.zeros(idx.shape, dtype=np.int32)
        inliers[q_pos[has], col[has]] = found.inliers
        evidence[f"inliers_{region}"] = inliers
        if region in cfg.outline_regions:
            evidence[f"outline_{region}"] = _outline_evidence(query[region], gallery[region], pairs, idx.shape,
                                                              (q_pos[has], col[has]))  # fmt: skip
    return evidence


def _outline_evidence(
    query: Features, gallery: Features, pairs: np.ndarray, shape: tuple[int, int], cells: tuple[np.ndarray, ...]
) -> np.ndarray:
    """Minus the outline distance of each (query row, gallery row) pair, placed at `cells` of an NaN [n, width]."""
    out = np.full(shape, np.nan)
    if not (query.has_outlines and gallery.has_outlines):
        return out
    q, g = pairs[:, 0], pairs[:, 1]
    distance = outline_distance(query.outline_sides[q], query.outline_lengths[q], gallery.outline_sides[g],
                                gallery.outline_lengths[g])  # fmt: skip
    out[cells] = -distance
    return out


def fuse_oof(
    stacked: StackedNeighbours,
    queries: pd.DataFrame,
    cfg: MatchConfig,
    k_neighbors: int,
    features_dir: Path = FEATURES_DIR,
) -> tuple[StackedNeighbours, PairCalibrator | None]:
    """Verify the OOF shortlists (train features against train features) and fit the fusion on them.

    Returns `fit_fusion`'s pair: the OOF neighbours scored by cross-fitted calibrators (what the threshold is
    tuned on) and the calibrator fitted on every OOF pair (what the answers use). Fallback: where the pairs
    cannot be calibrated (all of one class, in some fold's complement too), a warning and the unchanged
    neighbours with no calibrator — the answers are then the similarity-only ones.
    """
    if stacked.gallery_images is None:
        raise InputError("fuse_oof: the OOF splits carry no gallery image ids")
    train = load_feature_sets("train", cfg.regions, features_dir)
    width = min(cfg.shortlist, k_neighbors, stacked.idx.shape[1])
    if width < cfg.shortlist:
        log.warning("match.shortlist %d: only %d neighbours per query to verify (raise tune.search.k_neighbors_min)",
                    cfg.shortlist, width)  # fmt: skip
    log.info("verifying %d OOF queries × %d candidates × %d regions", len(queries), width, len(cfg.regions))
    evidence = shortlist_evidence(train, train, queries["image"].tolist(), stacked.gallery_images, stacked.idx,
                                  width, cfg)  # fmt: skip
    try:
        return fit_fusion(stacked, evidence, queries["fold"].to_numpy(), cfg.evidence_names, cfg.calibrator,
                          k_neighbors)  # fmt: skip
    except CalibrationError as err:
        log.warning("match: %s — answering by similarity alone (no calibrator saved)", err)
        return stacked, None


def evidence_picture(
    query_crop: Path, gallery_crop: Path, cfg: MatchConfig, height: int = 150,
    features: tuple[Features, int, Features, int] | None = None,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """The query crop beside a gallery crop with a line per verified keypoint match, and the inlier count.

    The matches are `whale_matcher.match_photos`'s: the query's better orientation (mirrored when that wins,
    drawn on the unmirrored crop), so the page shows the evidence the calibrator weighed.

    Args:
        features: (query features, row, gallery features, row) of these two crops, as verification extracted
            them; without, both crops are extracted again here (~50 ms a pair, most of a review page's time).
    """
    from whale_core import load_rgb
    from whale_matcher import draw_matches, extract_features, match_photos

    if features is None:
        paths = [str(query_crop), str(gallery_crop)]
        feats = extract_features(["query", "gallery"], paths, cfg.features.replace(workers=1), progress=False)
        features = (feats, 0, feats, 1)
    query, q, gallery, g = features
    q_pts, g_pts, _, _ = match_photos(query, q, gallery, g, cfg.features)
    q_img, g_img = np.asarray(load_rgb(query_crop)), np.asarray(load_rgb(gallery_crop))
    q_pts = q_pts * (q_img.shape[1] / max(int(query.size[q][0]), 1))  # from the matcher's working size to pixels
    g_pts = g_pts * (g_img.shape[1] / max(int(gallery.size[g][0]), 1))
    return draw_matches(q_img, g_img, q_pts, g_pts, height=height), len(q_pts)


def query_features_path(identify_dir: Path, region: str) -> Path:
    return identify_dir / f"query_features_{region}.npz"
