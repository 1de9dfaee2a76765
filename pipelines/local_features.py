"""Stage `local_features`: keypoints + descriptors of every train and test crop, per region (params `match`).

Reads `data/prepared/{train,test}.csv` and `data/crops/<region>/<split>/<image>.jpg`; writes
`features/<region>/<split>.npz` (`whale_matcher.save_features`: arrays only, no pickle) and
`metrics/local_features.json`. With `match.enabled: false` it writes the metrics file alone, so the stage
costs nothing when verification is off.
"""

from __future__ import annotations

import logging

import numpy as np

from pipelines._common import load_params, run_stage
from whale_core import atomic_write_json
from whale_matcher import extract_features, save_features
from whale_reid.crops import crop_table
from whale_reid.verification import FEATURES_DIR, MatchConfig, features_path

log = logging.getLogger("pipelines.local_features")
METRICS_FILE = "metrics/local_features.json"


def main() -> None:
    cfg = MatchConfig.from_dict(load_params().get("match"))
    FEATURES_DIR.mkdir(exist_ok=True)  # the stage's output folder exists even when verification is off
    summary: dict = {"enabled": cfg.enabled, "extractor": cfg.features.extractor}
    if cfg.enabled:
        for split in ("train", "test"):
            table = crop_table(split, cfg.regions)
            for region in cfg.regions:
                feats = extract_features(table["image"].tolist(), table[f"path_{region}"].tolist(), cfg.features)
                save_features(features_path(region, split), feats)
                counts = np.diff(feats.offsets)
                summary[f"{region}_{split}_keypoints_mean"] = round(float(counts.mean()) if len(counts) else 0.0, 1)
                summary[f"{region}_{split}_no_keypoints"] = int((counts == 0).sum())
                log.info("%s %s: %d crops, %.0f keypoints each", region, split, len(feats), counts.mean())
    atomic_write_json(METRICS_FILE, summary)


if __name__ == "__main__":
    run_stage(main)()
