"""The MLflow bundle lists exactly the files identify reads, whatever the crops' box source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from whale_core import InputError
from whale_reid.identify.model_bundle import bundle_files

CHECKPOINT = Path("models/embedder/demo/fold0/best.pt")


def _run_folder(root: Path, crop: dict) -> Path:
    """A run's files as predict leaves them: params, selection, gallery (with its crop settings), a checkpoint."""
    (root / "outputs").mkdir(parents=True)
    (root / "models/gallery").mkdir(parents=True)
    (root / CHECKPOINT).parent.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"crop": crop}), encoding="utf-8")
    (root / "outputs/selection.json").write_text(json.dumps({"members": [{"model": "demo", "fold": 0}]}))
    (root / "models/gallery/gallery.json").write_text(json.dumps({"settings": {"crop": crop}}))
    (root / "models/gallery/gallery.npz").write_bytes(b"npz")
    (root / CHECKPOINT).write_bytes(b"weights")
    return root


def test_whole_photo_crops_bundle_no_box_file(tmp_path):
    repo = _run_folder(tmp_path, {"box_source": "none", "detector_stages": [], "box_input": "data/prepared"})
    assert sorted(map(str, bundle_files(repo))) == sorted([
        "params.yaml", "outputs/selection.json", "models/gallery/gallery.json", "models/gallery/gallery.npz",
        str(CHECKPOINT),
    ])  # fmt: skip


def test_given_boxes_are_bundled_and_a_missing_box_file_is_named(tmp_path):
    boxes = "boxes/all.csv"
    crop = {"box_source": "boxes_csv", "boxes_csv": boxes, "detector_stages": [], "box_input": boxes}
    repo = _run_folder(tmp_path, crop)
    with pytest.raises(InputError, match=r"boxes/all\.csv missing"):
        bundle_files(repo)
    (repo / "boxes").mkdir()
    (repo / "boxes/all.csv").write_text("image,region,x1,y1,x2,y2\n", encoding="utf-8")
    assert Path("boxes/all.csv") in bundle_files(repo) and Path("models/detector/best.pt") not in bundle_files(repo)


def test_detector_crops_bundle_the_weights(tmp_path):
    repo = _run_folder(tmp_path, {"box_source": "detector"})
    with pytest.raises(InputError, match=r"models/detector/best\.pt missing"):
        bundle_files(repo)
