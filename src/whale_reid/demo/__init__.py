"""The demo-data renderer: a synthetic, learnable population of whales and dolphins in the Kaggle layout.

`generate_demo(cfg, out_dir)` writes train.csv, train_images/, test_images/, test_labels.csv,
sample_submission.csv and boxes.csv; `render_contact_sheet` draws a few of them for the docs.
"""

from whale_reid.demo.config import TINY_DEMO, DemoConfig
from whale_reid.demo.contact_sheet import render_contact_sheet
from whale_reid.demo.writer import DemoSummary, generate_demo

__all__ = ["TINY_DEMO", "DemoConfig", "DemoSummary", "generate_demo", "render_contact_sheet"]
