"""Stage `demo_data`: render the synthetic whale and dolphin population (`whale_reid.demo`) into the demo folder."""

from __future__ import annotations

from pathlib import Path

from whale_reid.common.params import DataParams
from whale_reid.demo import DemoConfig, generate_demo


def render_demo_data(data: DataParams, out: Path) -> dict[str, int]:
    """Render `data.demo`'s population into `out` (an earlier run's files removed first) and return its counts.

    The Kaggle layout (train.csv, train_images/, test_images/, sample_submission.csv) plus boxes.csv and
    test_labels.csv.
    """
    summary = generate_demo(DemoConfig.from_dict(dict(data.demo), section="data.demo"), out, replace=True)
    return summary.counts()
