"""The DVC graph as params shape it: given boxes train no detector, real data renders no demo."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import make_pipeline_repo, run_in
from tests.pipelines.conftest import make_kaggle_layout


def _stages_run(stdout: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", stdout)


def _edit(repo, **sections) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params[section] = {**params.get(section, {}), **values}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.pipeline  # a repository copy and `dvc repro prepare`
def test_given_boxes_and_real_data_leave_out_the_detector_and_the_demo(tmp_path):
    repo = make_pipeline_repo(tmp_path / "repo")
    listed = run_in(repo, "dvc", "stage", "list").stdout  # the defaults: the demo, detector-cut crops
    assert "demo_data@demo" in listed and "train_detector@yolo" in listed

    raw = make_kaggle_layout(tmp_path)  # a real data folder: no boxes.csv in it
    given = "boxes/given.csv"
    (repo / "boxes").mkdir()
    (repo / given).write_text("image,region,x1,y1,x2,y2\ntrain00.jpg,fullbody,1,1,20,20\n")
    _edit(repo, data={"raw_dir": str(raw), "demo_stages": []},
          crop={"box_source": "boxes_csv", "boxes_csv": given, "detector_stages": [], "box_input": given})  # fmt: skip
    prepared = run_in(repo, "dvc", "repro", "prepare")  # (a dry run needs the upstream outputs to exist)
    assert prepared.returncode == 0, prepared.stderr
    assert _stages_run(prepared.stdout) == ["prepare"]  # the demo is not rendered
    dry = run_in(repo, "dvc", "repro", "--dry", "crop")
    assert dry.returncode == 0, dry.stderr  # no boxes.csv in the raw folder, and none is asked for
    assert _stages_run(dry.stdout) == ["crop"] and "detector" not in dry.stdout
    listed = run_in(repo, "dvc", "stage", "list").stdout
    assert "train_detector" not in listed and "demo_data" not in listed
    crop = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["crop"]
    assert "${crop.box_input}" in crop["deps"]  # the given file is a dependency: editing it re-runs crop


@pytest.mark.pipeline  # a repository copy and `dvc repro prepare`
def test_a_catalogue_with_whole_photo_crops_runs_no_detector_and_box_source_alone_is_refused(tmp_path):
    from tests.pipelines.test_catalogue import WHOLE_PHOTOS, _folders

    repo = make_pipeline_repo(tmp_path / "repo")
    raw = tmp_path / "catalogue"
    _folders(raw)  # a folder per individual: no train.csv, no boxes
    _edit(repo, data={"raw_dir": str(raw), "demo_stages": []}, crop={"box_source": "none"})
    refused = run_in(repo, "dvc", "repro", "prepare")  # the first stage to run refuses the contradiction
    assert refused.returncode != 0 and _stages_run(refused.stdout) == ["prepare"]
    assert "crop.box_source: none needs crop.detector_stages: [], crop.box_input: data/prepared" in refused.stderr

    _edit(repo, crop=WHOLE_PHOTOS)
    prepared = run_in(repo, "dvc", "repro", "prepare")
    assert prepared.returncode == 0, prepared.stderr
    dry = run_in(repo, "dvc", "repro", "--dry", "crop")
    assert dry.returncode == 0, dry.stderr
    assert _stages_run(dry.stdout) == ["crop"] and "detector" not in dry.stdout
    assert "train_detector" not in run_in(repo, "dvc", "stage", "list").stdout
