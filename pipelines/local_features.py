"""Stage `local_features`: keypoints + descriptors of every train and test crop, per region (params `match`).

Reads the prepared tables and the crops; writes `<out>/<region>/<split>.npz` (`whale_matcher.save_features`:
arrays only, no pickle, SIFT as its histogram bytes or `match.features.descriptor_bits` codes; read back
memory-mapped) and the metrics file. With `match.enabled: false` it writes the metrics file alone, so
the stage costs nothing when verification is off (`whale_reid.stages.local_features`).
"""

from __future__ import annotations

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_json
from whale_reid.answers.verification import MatchConfig
from whale_reid.stages.local_features import extract_crop_features


def main() -> None:
    args = stage_paths(__doc__, "prepared", "crops", "out", "metrics")
    cfg = MatchConfig.from_dict(load_params().get("match"))
    atomic_write_json(args.metrics, extract_crop_features(cfg, args.prepared, args.crops, args.out))


if __name__ == "__main__":
    run_stage(main)()
