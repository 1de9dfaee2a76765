"""Photo types in the demo: the `photo_types` mix is validated, drawn per species, and a lateral-only mix is the
renderer as it was before photo types (byte for byte)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO_ROOT
from whale_core import ConfigError
from whale_reid.demo import TINY_DEMO, DemoConfig, generate_demo
from whale_reid.demo.photo_types import draw_photo_type
from whale_reid.demo.species import CATALOGUE

LATERAL_ONLY = {"fin": 0.0, "lateral": 1.0, "top": 0.0}
BELUGA = next(s for s in CATALOGUE if not s.has_dorsal_fin)
FIN_SPECIES = [s for s in CATALOGUE if s.has_dorsal_fin]

#: SHA-256 over (relative path, file SHA-256) of every file `generate_demo` wrote, computed with the renderer
#: before photo types existed. JPEG bytes depend on Pillow's drawing and libjpeg: a Pillow upgrade that changes
#: them changes these digests too (check the CSVs first: boxes.csv pins the drawn masks).
BEFORE_PHOTO_TYPES = {
    "tiny": "5e7cb001aad584e0e0b2a9e7b4c8ba1397717a6da0c4594344cebb888a1b3d79",
    "tiny, 4 species (beluga), seed 5": "6709669de7cff81c826b7850112e51d4ec0c1e3a7d61b0642117e7276ca73574",
}


def _folder_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("name", "changes"),
    [("tiny", {}), ("tiny, 4 species (beluga), seed 5", {"n_species": 4, "n_individuals": 16, "seed": 5})],
)
def test_lateral_only_is_byte_identical_to_the_renderer_before_photo_types(tmp_path, name, changes):
    out = tmp_path / "raw"
    generate_demo(TINY_DEMO.replace(photo_types=LATERAL_ONLY, **changes), out)
    assert _folder_digest(out) == BEFORE_PHOTO_TYPES[name]


def test_params_yaml_default_is_the_competition_like_mix():
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    cfg = DemoConfig.from_dict(params["data"]["demo"], section="data.demo")
    assert dict(cfg.photo_types) == {"fin": 0.6, "lateral": 0.3, "top": 0.1}


def _profile_demo(name: str) -> DemoConfig:
    """`data.demo` of params.yaml with a profile laid over it key by key (as `dvc exp run -S` applies it)."""
    demo = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["data"]["demo"]
    overlay = yaml.safe_load((REPO_ROOT / "profiles" / f"{name}.yaml").read_text())["data"]["demo"]
    merged = {**demo, **overlay, "photo_types": {**demo["photo_types"], **overlay.get("photo_types", {})}}
    return DemoConfig.from_dict(merged, section="data.demo")


def test_profiles_give_the_lateral_demo_the_fin_population_and_the_tiny_test_demo():
    defaults = DemoConfig()
    assert _profile_demo("demo-lateral") == defaults.replace(photo_types=LATERAL_ONLY)
    fins = {"fin": 0.85, "lateral": 0.15, "top": 0.0}
    assert _profile_demo("fins") == defaults.replace(n_individuals=100, photo_types=fins)
    assert _profile_demo("tiny") == TINY_DEMO  # the end-to-end profile renders what the demo tests render
    assert TINY_DEMO.photo_type_weights() == {"lateral": 0.5, "fin": 0.5, "top": 0.0}


@pytest.mark.parametrize(
    ("photo_types", "message"),
    [
        ({"fins": 1.0}, r"data\.demo\.photo_types: unknown photo type 'fins' \(known: lateral, fin, top\)"),
        ({"fin": -0.1, "lateral": 1.0}, r"data\.demo\.photo_types\.fin: -0\.1 must be >= 0"),
        ({"fin": float("nan")}, r"data\.demo\.photo_types\.fin: expected a finite number, got nan"),
        ({"fin": 0.0, "lateral": 0.0}, r"data\.demo\.photo_types: .* needs a positive weight"),
        ({}, r"data\.demo\.photo_types: .* needs a positive weight"),
        ({"fin": "most"}, r"data\.demo\.photo_types\.fin: expected a number"),
    ],
)
def test_bad_photo_types_are_refused_naming_the_key(photo_types, message):
    with pytest.raises(ConfigError, match=message):
        DemoConfig.from_dict({"photo_types": photo_types}, section="data.demo")


def _draws(shares: dict[str, float], species, n: int = 3000) -> dict[str, int]:
    types = [draw_photo_type(shares, np.random.default_rng([0, k]), species) for k in range(n)]
    return {name: types.count(name) for name in set(types)}


def test_a_finless_species_gets_top_for_fin_and_a_fin_species_never_gets_top():
    shares = DemoConfig().photo_type_weights()  # fin 0.6, lateral 0.3, top 0.1
    beluga = _draws(shares, BELUGA)
    assert set(beluga) == {"top", "lateral"}
    assert beluga["top"] / 3000 == pytest.approx(0.7, abs=0.03)  # fin's share and top's own
    for species in FIN_SPECIES[:3]:
        counts = _draws(shares, species)
        assert set(counts) == {"fin", "lateral"}
        assert counts["fin"] / 3000 == pytest.approx(2 / 3, abs=0.03)  # fin : lateral as 0.6 : 0.3
    assert _draws({"top": 1.0, "fin": 0.0, "lateral": 0.0}, FIN_SPECIES[0], 50) == {"lateral": 50}
    assert _draws({"fin": 1.0}, BELUGA, 50) == {"top": 50}


def test_the_rendered_tiny_demo_has_the_mix(tiny_demo):
    _, summary = tiny_demo
    counts = summary.counts()
    photos = counts["photos"]
    assert counts["fin_photos"] + counts["lateral_photos"] == photos and counts["top_photos"] == 0
    assert counts["fin_photos"] / photos == pytest.approx(0.5, abs=0.15)
