"""A selected checkpoint is read only as the file its fold recorded: identify, predict and a pseudo-label round
refuse a `best.pt` whose sha256 differs from its `fold.json`'s `checkpoint_sha256` with one line naming it.

All three go through `whale_reid.answers.ensemble.verified_checkpoint`; the identify case is
`test_boundary.py::test_a_checkpoint_replaced_by_another_folds_is_refused`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.pipelines.conftest import stage_command
from tests.reliability.conftest import run_module, stage_env
from whale_core import InputError, file_sha256
from whale_reid.answers.ensemble import member_checkpoints, verified_checkpoint
from whale_reid.answers.verification import MatchConfig
from whale_reid.stages.predict import PredictConfig, PredictPaths, predict_test


def _recorded_fold(fold: Path, weights: bytes) -> Path:
    """A fold folder as train_embedder leaves it: `best.pt` and the summary recording its sha256."""
    fold.mkdir(parents=True)
    (fold / "best.pt").write_bytes(weights)
    (fold / "fold.json").write_text(json.dumps({"cv_map5": 0.5, "checkpoint_sha256": file_sha256(fold / "best.pt")}))
    return fold / "best.pt"


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "unrecorded"])
def test_a_changed_checkpoint_is_refused_naming_it_and_its_record(tmp_path: Path, damage: str) -> None:
    best = _recorded_fold(tmp_path / "demo/fold0", bytes(range(256)) * 8)
    assert verified_checkpoint(best) == best
    if damage == "flip":
        _flip_a_byte(best)
    elif damage == "truncate":
        best.write_bytes(best.read_bytes()[:1000])
    else:  # a summary written before digests were recorded: the file loads as before
        (best.parent / "fold.json").write_text(json.dumps({"cv_map5": 0.5}))
        _flip_a_byte(best)
        assert verified_checkpoint(best) == best
        return
    with pytest.raises(InputError) as caught:
        verified_checkpoint(best)
    assert str(caught.value) == (f"{best}: not the checkpoint {best.parent / 'fold.json'} recorded (its sha256 "
                                 "differs): restore it, or re-run train_embedder")  # fmt: skip


def test_member_checkpoints_checks_every_member_in_order(tmp_path: Path) -> None:
    paths = [_recorded_fold(tmp_path / f"models/demo/fold{k}", b"weights %d" % k) for k in range(2)]
    members = pd.DataFrame({"model": ["demo", "demo"], "fold": [1, 0],
                            "checkpoint": ["models/demo/fold1/best.pt", "models/demo/fold0/best.pt"]})  # fmt: skip
    assert member_checkpoints(members, tmp_path) == paths[::-1]
    paths[0].write_bytes(b"weights 1")  # fold1's weights over fold0's
    with pytest.raises(InputError, match=r"models/demo/fold0/best.pt: not the checkpoint"):
        member_checkpoints(members, tmp_path)
    with pytest.raises(InputError, match="without its checkpoint"):
        member_checkpoints(members.drop(columns="checkpoint"), tmp_path)


def test_predict_refuses_a_changed_checkpoint_before_reading_anything_else(tmp_path: Path, monkeypatch) -> None:
    """The check comes first: postprocess.json, the tables and the embeddings do not even exist here."""
    monkeypatch.chdir(tmp_path)
    best = _recorded_fold(tmp_path / "models/embedder/demo/fold0", b"weights of fold 0")
    member = {
        "model": "demo",
        "fold": 0,
        "run_id": "r",
        "cv_map5": 0.5,
        "checkpoint": "models/embedder/demo/fold0/best.pt",
    }
    (tmp_path / "selection.json").write_text(json.dumps({"members": [member]}))
    best.write_bytes(b"weights of fold 1")
    paths = PredictPaths(Path("selection.json"), Path("postprocess.json"), Path("prepared"), Path("embeddings"),
                         Path("features"), Path("raw"))  # fmt: skip
    with pytest.raises(InputError, match=r"^models/embedder/demo/fold0/best.pt: not the checkpoint"):
        predict_test(PredictConfig(), MatchConfig(), paths)


def _selected_checkpoint(selection: Path) -> Path:
    return Path(json.loads(selection.read_text())["members"][0]["checkpoint"])


def _assert_refused(proc: subprocess.CompletedProcess, checkpoint: Path) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert last == (f"error: {checkpoint}: not the checkpoint {checkpoint.parent / 'fold.json'} recorded (its "
                    "sha256 differs): restore it, or re-run train_embedder"), last  # fmt: skip


def test_the_predict_stage_refuses_a_flipped_byte_and_keeps_its_outputs(pipeline_copy: Path) -> None:
    checkpoint = _selected_checkpoint(pipeline_copy / "outputs/selection.json")
    _flip_a_byte(pipeline_copy / checkpoint)
    outputs = [pipeline_copy / "outputs/submission.csv", pipeline_copy / "models/gallery/gallery.json"]
    before = [path.read_bytes() for path in outputs]
    _assert_refused(run_module(pipeline_copy, "predict"), checkpoint)
    assert [path.read_bytes() for path in outputs] == before


def test_a_pseudo_round_refuses_its_truncated_checkpoint_before_tuning(pipeline_copy: Path) -> None:
    """The round's folds are up to date (skipped), its selection is checked before the tune's work."""
    checkpoint = _selected_checkpoint(pipeline_copy / "outputs/round1/selection.json")
    assert checkpoint.parts[:2] == ("models", "embedder_round1")
    data = (pipeline_copy / checkpoint).read_bytes()
    (pipeline_copy / checkpoint).write_bytes(data[: len(data) // 2])
    outputs = [pipeline_copy / "outputs/round1" / name for name in ("selection.json", "postprocess.json")]
    before = [path.read_bytes() for path in outputs]
    command = stage_command("pseudo_round", pipeline_copy, item=1)  # the stage `pseudo_round@1`
    proc = subprocess.run(command, cwd=pipeline_copy, env=stage_env(pipeline_copy), capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip
    _assert_refused(proc, checkpoint)
    assert [path.read_bytes() for path in outputs] == before
