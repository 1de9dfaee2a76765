"""The path a real user takes, scaled down: a Kaggle-shaped download, a Bremer-style public box file converted
by `whale-reid boxes convert`, and the `kaggle` profile's structure (three zoo entries, 5 folds, `delta`
selection, per-species tuning) — through `dvc repro` to a submission, in a temporary git repo.

Scaled by overrides only: `pretrained: false`, 32 px inputs, 1 epoch, few Optuna trials, CPU devices. The zoo
entries keep their names but get tiny timm backbones: the real ones (tf_efficientnet_b6_ns, 41 M parameters;
tf_efficientnetv2_l_in21k, 118 M; eca_nfnet_l2, 56 M) take minutes per fold on 2 CPU cores even at 32 px;
that their names exist in timm is checked here instead.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import timm
import yaml
from PIL import Image

from tests.conftest import make_pipeline_repo, run_in

pytestmark = pytest.mark.slow

#: The competition's raw species names, typos included (prepare maps them to the canonical ones).
SPECIES = ["bottlenose_dolpin", "kiler_whale", "globis", "pilot_whale", "humpback_whale", "beluga"]
TINY_BACKBONES = {"effb6": "test_efficientnet.r160_in1k", "effv2l": "test_efficientnet.r160_in1k",
                  "nfnetl2": "test_byobnet.r160_in1k"}  # fmt: skip


def _photo(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Noise water with a dark animal-ish block; its box in the photo's pixels."""
    pixels = rng.integers(40, 140, size=(height, width, 3), dtype=np.uint8)
    x1, y1 = int(width * 0.2), int(height * 0.3)
    x2, y2 = int(width * 0.8), int(height * 0.75)
    pixels[y1:y2, x1:x2] = rng.integers(0, 40, size=3, dtype=np.uint8)
    return Image.fromarray(pixels), (x1, y1, x2, y2)


def _save_odd(img: Image.Image, path, kind: str) -> tuple[int, int]:
    """Save in one of the awkward forms real downloads hold; returns the upright (width, height)."""
    if kind == "gray":
        img.convert("L").save(path, "JPEG")
    elif kind == "cmyk":
        img.convert("CMYK").save(path, "JPEG")
    elif kind == "png":
        img.save(path, "PNG")  # PNG bytes behind a .jpg name
    elif kind == "exif":  # stored sideways, EXIF orientation 6 (rotate 90° clockwise to view)
        exif = Image.Exif()
        exif[274] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", exif=exif)
    else:
        img.save(path, "JPEG", quality=90)
    return img.size


def make_download(root) -> tuple:
    """A Kaggle-layout folder and a Bremer-style box file (image, bbox "[[x1 y1 x2 y2]]", conf "[c]")."""
    rng = np.random.default_rng(3)
    raw = root / "happy-whale-and-dolphin"
    (raw / "train_images").mkdir(parents=True)
    (raw / "test_images").mkdir()
    kinds = ["plain", "gray", "cmyk", "png", "exif"]
    train, boxes, n = [], [], 0
    for ind in range(12):
        for _ in range(5):
            name = f"{n:06x}.jpg"
            size = (2400, 1600) if n == 0 else (96 + 8 * (n % 5), 72 + 4 * (n % 3))  # one large photo
            img, box = _photo(rng, *size)
            _save_odd(img, raw / "train_images" / name, kinds[n % len(kinds)])
            train.append({"image": name, "species": SPECIES[ind % len(SPECIES)], "individual_id": f"{ind:012x}"})
            boxes.append({"image": name, "bbox": f"[[{box[0]} {box[1]} {box[2]} {box[3]}]]", "conf": "[0.91]"})
            n += 1
    test = []
    for t in range(8):
        name = f"t{t:05x}.jpg"
        img, box = _photo(rng, 100, 80)
        _save_odd(img, raw / "test_images" / name, kinds[t % len(kinds)])
        test.append({"image": name, "predictions": "new_individual"})
        boxes.append({"image": name, "bbox": f"[[{box[0]}, {box[1]}, {box[2]}, {box[3]}]]", "conf": "[0.8]"})
    boxes.append({"image": "t00001.jpg", "bbox": "[]", "conf": "[]"})  # a photo the detector found nothing in
    pd.DataFrame(train).to_csv(raw / "train.csv", index=False)
    pd.DataFrame(test).to_csv(raw / "sample_submission.csv", index=False)
    bremer = root / "bremer_fullbody.csv"
    pd.DataFrame(boxes).to_csv(bremer, index=False)
    return raw, bremer


def _overlay(params: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            _overlay(params[key], value)
        else:
            params[key] = value
    return params


def test_a_kaggle_shaped_download_runs_to_a_submission(tmp_path):
    repo = make_pipeline_repo(tmp_path / "repo", profile="kaggle")
    raw, bremer = make_download(tmp_path)
    given = "boxes/fullbody.csv"
    (repo / "boxes").mkdir()
    photos = [str(raw / "train_images"), str(raw / "test_images")]
    converted = run_in(repo, "whale-reid", "boxes", "convert", str(bremer), "--format", "bremer", "--region",
                       "fullbody", "--images", *photos, "--out", given)  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    assert converted.stdout.startswith("68 boxes of 68 photos")

    params = yaml.safe_load((repo / "params.yaml").read_text())
    kaggle = yaml.safe_load((repo / "profiles" / "kaggle.yaml").read_text())
    assert params["embedder"]["models"] == ["effb6", "effv2l", "nfnetl2"] and params["prepare"]["n_folds"] == 5
    assert params["select"]["rule"] == "delta" and params["tune"]["search"]["per_species"] is True
    for entry in kaggle["embedder"]["zoo"].values():
        assert timm.is_model(entry["backbone"]), entry  # the real names resolve (deprecated aliases included)
    _overlay(params, {
        "data": {"raw_dir": str(raw), "demo_stages": []},
        "crop": {"box_source": "boxes_csv", "boxes_csv": given, "detector_stages": [], "box_input": given,
                 "device": "cpu", "max_side_px": 64, "workers": 2},
        "embedder": {"common": {"pretrained": False, "image_size": 32, "embedding_dim": 32, "batch_size": 8,
                                "epochs": 1, "num_workers": 0, "device": "cpu"},
                     "zoo": {name: {"backbone": b} for name, b in TINY_BACKBONES.items()}},
        "tune": {"search": {"n_trials": 4, "k_neighbors_min": 20, "k_neighbors_max": 20}},
        "match": {"shortlist": 10, "features": {"max_keypoints": 100, "workers": 1}},
    })  # fmt: skip
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    proc = run_in(repo, "dvc", "repro", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "demo_data" not in proc.stdout and "train_detector" not in proc.stdout

    prepared = pd.read_csv(repo / "data/prepared/train.csv", dtype=str)
    assert {"bottlenose_dolphin", "killer_whale", "short_finned_pilot_whale"} <= set(prepared["species"])
    assert sorted(prepared["fold"].astype(int).unique()) == [0, 1, 2, 3, 4]
    crops = pd.read_csv(repo / "data/crops/boxes.csv")
    full = crops[crops["region"] == "fullbody"].set_index("image")
    assert (full["source"] == "boxes_csv").all() and len(full) == 68
    exif = full.loc["000004.jpg"]  # stored sideways as 76x128: boxes and crops are in the upright 128x76 frame
    assert exif["x2"] <= 128 and exif["y2"] <= 76 and exif["x2"] - exif["x1"] > exif["y2"] - exif["y1"]
    selection = json.loads((repo / "outputs/selection.json").read_text())
    assert {m["model"] for m in selection["members"]} <= {"effb6", "effv2l", "nfnetl2"}
    submission = pd.read_csv(repo / "outputs/submission.csv", dtype=str)
    assert sorted(submission["image"]) == sorted(f"t{t:05x}.jpg" for t in range(8))
    assert all(len(set(p.split())) == 5 for p in submission["predictions"])
    postprocess = json.loads((repo / "outputs/postprocess.json").read_text())
    assert set(postprocess["species_offsets"]) == set(prepared["species"])  # per-species tuning ran
    assert postprocess["scale"] == "probability"  # the profile verifies the shortlist
