"""The `local_features` stage's work: keypoints + descriptors of every train and test crop, per region."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from whale_matcher import extract_features, save_features
from whale_reid.answers.verification import MatchConfig, features_path
from whale_reid.dataset.crops import crop_table

log = logging.getLogger(__name__)


def extract_crop_features(cfg: MatchConfig, prepared: Path, crops: Path, out: Path) -> dict:
    """Write `<out>/<region>/<split>.npz` for every configured region (nothing when verification is off).

    Returns:
        The summary the stage writes: per region and split the mean keypoint count, the crops without any and
        the file's size (descriptors kept as `match.features.descriptor_bits` says: `whale_matcher.coding`).
    """
    out.mkdir(parents=True, exist_ok=True)  # the stage's output folder exists even when verification is off
    summary: dict = {"enabled": cfg.enabled, "extractor": cfg.features.extractor}
    if not cfg.enabled:
        return summary
    for split in ("train", "test"):
        table = crop_table(split, cfg.regions, prepared_dir=prepared, crops_dir=crops)
        for region in cfg.regions:
            feats = extract_features(
                table["image"].tolist(), table[f"path_{region}"].tolist(), cfg.region_features(region)
            )
            counts = np.diff(feats.offsets)
            summary[f"{region}_{split}_keypoints_mean"] = round(float(counts.mean()) if len(counts) else 0.0, 1)
            summary[f"{region}_{split}_no_keypoints"] = int((counts == 0).sum())
            if feats.has_outlines and "species" in table.columns:
                finless = table["species"].isin(cfg.outline_skip_species).to_numpy()
                feats = dataclasses.replace(feats, outline_lengths=np.where(finless[:, None], 0, feats.outline_lengths))
            if feats.has_outlines:
                traced = feats.outline_lengths.min(axis=1) > 0
                summary[f"{region}_{split}_outline_traced"] = round(float(traced.mean()) if len(traced) else 0.0, 4)
                if len(traced):
                    log.info("%s %s: fin outline traced on %.0f%% of the crops", region, split, 100 * traced.mean())
            path = features_path(region, split, out)
            save_features(path, feats)
            summary[f"{region}_{split}_file_mb"] = round(path.stat().st_size / 1e6, 1)
            if len(feats):
                log.info("%s %s: %d crops, %.0f keypoints each, %s descriptors", region, split, len(feats),
                         counts.mean(), feats.coding)  # fmt: skip
            else:  # a catalogue without test photos
                log.info("%s %s: no photos", region, split)
    return summary
