"""Training: learns beyond the untrained model, checkpoints load with weights_only, resume is exact."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from whale_embedder import EmbedderConfig, EmbeddingModel
from whale_embedder.checkpoint import load_checkpoint, model_from_checkpoint
from whale_embedder.evaluate import evaluate_model
from whale_embedder.runtime import seed_everything
from whale_embedder.train import train_fold

pytestmark = pytest.mark.train  # trains a model: not part of `make test-fast`


def split(crops: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    val = crops.groupby("label").head(2)
    return crops.drop(val.index), val


def test_training_beats_the_untrained_model(crops, tiny_cfg, tmp_path):
    train_df, val_df = split(crops)
    cfg = tiny_cfg.replace(epochs=3)
    seed_everything(cfg.seed)
    untrained = evaluate_model(EmbeddingModel(cfg, train_df["label"].nunique()), cfg, train_df, val_df)
    seen = []
    result = train_fold(
        cfg, train_df, val_df, out_dir=tmp_path, progress=False, on_epoch_end=lambda _m, s: seen.append(s)
    )
    assert seen == [0, 1, 2]
    assert result.metrics["val_map5"] >= untrained["val_map5"] + 0.1, (untrained, result.metrics)
    assert result.metrics["val_map5"] == max(h["val_map5"] for h in result.history)
    state = load_checkpoint(result.best_path)  # weights_only=True: plain metadata only
    assert state["epoch"] == result.best_epoch and state["classes"] == sorted(train_df["label"].unique())
    model, loaded_cfg = model_from_checkpoint(state)
    assert loaded_cfg == cfg
    assert evaluate_model(model, cfg, train_df, val_df)["val_map5"] == pytest.approx(result.metrics["val_map5"])


def test_validation_every_n_epochs_counts_back_from_the_last(crops, tiny_cfg, tmp_path):
    train_df, val_df = split(crops)
    cfg = tiny_cfg.replace(epochs=4, val_every_epochs=2)
    validated = []
    result = train_fold(
        cfg,
        train_df,
        val_df,
        out_dir=tmp_path,
        progress=False,
        on_epoch_end=lambda m, e: validated.append(e) if "val_map5" in m else None,
    )
    assert validated == [1, 3]  # 4 epochs, every 2nd counted back from the last
    assert [("val_map5" in h) for h in result.history] == [False, True, False, True]
    assert result.best_epoch in (1, 3)
    assert result.metrics["val_map5"] == max(result.history[e]["val_map5"] for e in (1, 3))
    assert load_checkpoint(result.best_path)["epoch"] == result.best_epoch


class Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_identical_weights(crops, tiny_cfg, tmp_path):
    train_df, val_df = split(crops)
    cfg = tiny_cfg.replace(epochs=2, arcface={"s": 16.0, "m": 0.2, "dynamic_margin": True}, species_head=True)
    cfg = cfg.replace(augment={"affine_p": 0.5, "color_p": 0.5, "dropout_p": 0.5}, region="mix", warmup_epochs=1)
    straight = train_fold(cfg, train_df, val_df, out_dir=tmp_path / "straight", progress=False)

    def die_after_first_epoch(metrics, epoch):
        if epoch == 0:
            raise Interrupt  # the process dies during epoch 1: only epoch 0's checkpoint exists

    with pytest.raises(Interrupt):
        train_fold(cfg, train_df, val_df, out_dir=tmp_path / "resumed", on_epoch_end=die_after_first_epoch)
    resumed = train_fold(cfg, train_df, val_df, out_dir=tmp_path / "resumed", progress=False)
    assert [h["epoch"] for h in resumed.history] == [0, 1]
    a = load_checkpoint(straight.last_path)["model"]
    b = load_checkpoint(resumed.last_path)["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name  # bit-for-bit on the CPU fp32 path
    timing_free = [pd.DataFrame(r.history).drop(columns="images_per_s") for r in (straight, resumed)]
    pd.testing.assert_frame_equal(*timing_free)


def test_changed_config_starts_afresh(crops, tiny_cfg, tmp_path):
    train_df, val_df = split(crops)
    train_fold(tiny_cfg.replace(epochs=1), train_df, val_df, out_dir=tmp_path, progress=False)
    result = train_fold(tiny_cfg.replace(epochs=1, lr=1e-3), train_df, val_df, out_dir=tmp_path, progress=False)
    assert load_checkpoint(result.last_path)["config"]["lr"] == 1e-3


def test_an_interrupted_fold_resumes_with_other_workers_and_eval_batch(crops, tiny_cfg, tmp_path):
    train_df, val_df = split(crops)
    cfg = tiny_cfg.replace(epochs=2)

    def die_after_first_epoch(metrics, epoch):
        raise Interrupt

    with pytest.raises(Interrupt):
        train_fold(cfg, train_df, val_df, out_dir=tmp_path, on_epoch_end=die_after_first_epoch, progress=False)
    # how it runs changed, not what it learns: epoch 0 is kept and only epoch 1 is trained
    trained = []
    rerun = cfg.replace(num_workers=1, eval_batch_size=8, device="cpu")
    resumed = train_fold(
        rerun,
        train_df,
        val_df,
        out_dir=tmp_path,
        progress=False,
        on_epoch_end=lambda metrics, epoch: trained.append(epoch),
    )
    assert trained == [1] and [h["epoch"] for h in resumed.history] == [0, 1]


def test_unknown_config_key_names_key_and_section():
    from whale_core import InputError

    with pytest.raises(InputError, match="unknown key 'lerning_rate' in params section 'embedder'"):
        EmbedderConfig.from_dict({"lerning_rate": 1e-3})
    with pytest.raises(InputError, match="embedder.arcface"):
        EmbedderConfig.from_dict({"arcface": {"margin": 0.3}})
