"""The model goes where the data goes: checked without a GPU on torch's `meta` device.

A `meta` tensor has a device, a shape and a dtype but no data, so a network runs on it end to end (every
kernel checks that its inputs share one device) and only copying a result out fails. A model left on the
CPU while its inputs are on `meta` fails at the first convolution — what a checkpoint read onto the CPU did
on every CUDA machine at the end of fold 0.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from whale_core import InputError
from whale_embedder import EmbeddingModel, extract_embeddings, model_from_checkpoint, save_checkpoint
from whale_embedder.runtime import resolve_device

META = torch.device("meta")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _devices_seen(model: EmbeddingModel) -> list[tuple[str, str, str]]:
    """(input, weight, output) device types of every call of the neck, recorded by a forward hook."""
    seen: list[tuple[str, str, str]] = []

    def record(module, inputs, output) -> None:
        seen.append((inputs[0].device.type, module[0].weight.device.type, output.device.type))

    model.neck.register_forward_hook(record)
    return seen


def test_extraction_moves_a_cpu_model_to_the_requested_device(crops, tiny_cfg):
    cfg = tiny_cfg.replace(amp="off")
    model = EmbeddingModel(cfg, n_classes=crops["label"].nunique())  # built on the CPU
    seen = _devices_seen(model)
    # the whole forward runs on `meta`; only copying the (data-less) embeddings back to numpy cannot
    with pytest.raises(NotImplementedError, match="meta tensor"):
        extract_embeddings(model, crops.head(5), cfg, device=META, progress=False)
    assert seen and all(call == ("meta", "meta", "meta") for call in seen)
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_extraction_defaults_to_the_configured_device(crops, tiny_cfg):
    cfg = tiny_cfg.replace(amp="off", device="meta")
    model = EmbeddingModel(cfg, n_classes=crops["label"].nunique())
    seen = _devices_seen(model)
    with pytest.raises(NotImplementedError, match="meta tensor"):
        extract_embeddings(model, crops.head(5), cfg, progress=False)
    assert seen and seen[0] == ("meta", "meta", "meta")


def test_a_checkpoint_is_rebuilt_on_the_requested_device(crops, tiny_cfg, tmp_path):
    classes = sorted(crops["label"].unique())
    model = EmbeddingModel(tiny_cfg, n_classes=len(classes))
    state = {"model": model.state_dict(), "config": tiny_cfg.to_dict(), "classes": classes, "species": []}
    path = save_checkpoint(tmp_path / "best.pt", state)

    on_meta, cfg = model_from_checkpoint(path, device="meta")
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    assert cfg == tiny_cfg and not on_meta.training
    on_cpu, _ = model_from_checkpoint(path, device="cpu")  # the CPU path: the same weights, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(on_cpu.state_dict().values(), model.state_dict().values()))


def test_device_settings_are_checked():
    assert resolve_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="embedder.device: unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            resolve_device("cuda")


def test_missing_pretrained_weights_are_one_line_naming_the_timm_tag(tmp_path):
    import subprocess
    import sys

    script = (
        "from pipelines._common import run_stage\n"
        "from whale_embedder import EmbedderConfig, EmbeddingModel\n"
        "cfg = EmbedderConfig.from_dict({'backbone': 'tf_efficientnet_b6_ns', 'pretrained': True, 'image_size': 32})\n"
        "run_stage(lambda: EmbeddingModel(cfg, 3))()\n"
    )
    empty = tmp_path / "hf"
    env = {**os.environ, "HF_HOME": str(empty), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("error:")]
    assert "Traceback" not in done.stderr
    assert line.startswith("error: embedder.pretrained: the weights of 'tf_efficientnet_b6_ns' — timm tag ")
    assert "tf_efficientnet_b6.ns_jft_in1k (Hugging Face timm/tf_efficientnet_b6.ns_jft_in1k)" in line
    assert str(empty / "hub") in line and "weights_file:" in line


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_05", "resnet50_typo.a1_in1k"])
def test_an_unknown_backbone_is_named_before_timm_is_asked(backbone):
    from whale_embedder import EmbedderConfig
    from whale_embedder.model import create_backbone

    cfg = EmbedderConfig.from_dict({"backbone": backbone, "pretrained": False, "image_size": 32})
    with pytest.raises(InputError, match=rf"^embedder\.backbone: unknown timm model '{backbone}'$"):
        create_backbone(cfg)


@pytest.mark.parametrize(
    ("amp", "native_bf16", "expected"),
    [
        ("auto", True, torch.bfloat16),  # A100, H100: bf16 in hardware
        ("auto", False, torch.float16),  # V100, T4: bf16 only emulated; fp16 with a GradScaler instead
        ("bf16", False, torch.bfloat16),  # asked for: kept
        ("fp16", True, torch.float16),
    ],
)
def test_cuda_precision_follows_native_bf16(amp, native_bf16, expected):
    from whale_embedder.runtime import cuda_autocast_dtype

    assert cuda_autocast_dtype(amp, native_bf16) is expected


def test_extraction_and_training_say_device_and_precision(crops, tiny_cfg, tmp_path, caplog):
    from whale_embedder import train_fold

    cfg = tiny_cfg.replace(amp="off", epochs=1, device="cpu", flip_tta=True)
    with caplog.at_level(logging.INFO, logger="whale_embedder"):
        extract_embeddings(EmbeddingModel(cfg, n_classes=3), crops.head(5), cfg)
        extract_embeddings(EmbeddingModel(cfg, n_classes=3), crops.head(4), cfg, progress=False)  # validation's
        train_fold(cfg, crops, None, out_dir=tmp_path, progress=False)
    lines = [r.getMessage() for r in caplog.records]
    assert "embedding 5 fullbody crops on cpu (1 rank(s)): fp32, flip TTA" in lines
    assert not any(line.startswith("embedding 4 ") for line in lines)  # quiet: at DEBUG
    training = f"training {cfg.backbone} at 48 px on cpu (1 rank(s)): fp32, channels_last, batch 16 × 1 accumulated"
    assert training in lines


def test_the_kaggle_profile_requires_a_gpu():
    from whale_reid.common.params import EmbedderParams, read_yaml

    embedder = EmbedderParams.from_dict(read_yaml(REPO_ROOT / "profiles" / "kaggle.yaml")["embedder"])
    assert {embedder.model_config(name).device for name in embedder.models} == {"cuda"}
    if not torch.cuda.is_available():  # one line, before any model is built, rather than weeks on the CPU
        with pytest.raises(InputError, match="embedder.device: 'cuda' asked for, but torch sees no CUDA device"):
            resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU fallback needs a machine without CUDA")
def test_the_cpu_fallback_is_said_once_a_process(caplog):
    from whale_embedder import runtime

    runtime._warn_cpu_fallback.cache_clear()
    with caplog.at_level(logging.WARNING, logger="whale_embedder"):
        devices = [resolve_device("auto") for _ in range(3)]
    assert {d.type for d in devices} == {"cpu"}
    assert sum("auto found no CUDA device" in r.getMessage() for r in caplog.records) == 1
