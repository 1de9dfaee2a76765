"""What a stage writes into a log file (not a terminal): its start and end with the time, no colour codes."""

from __future__ import annotations

import subprocess
import sys

from pipelines._common import stage_label

SCRIPT = """
import logging, sys
from pipelines._common import run_stage
sys.argv = ["pipelines/train_embedder.py", "--model", "demo", "--crops", "data/crops"]
def main():
    logging.getLogger("ultralytics").info("\\x1b[34m\\x1b[1mtrain: \\x1b[0mScanning 12 images")
run_stage(main)()
"""


def test_a_stage_logs_its_start_and_end_and_no_colour_codes_into_a_file(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    log = proc.stdout + proc.stderr
    assert "stage train_embedder demo: started" in log and "stage train_embedder demo: done in " in log
    assert "train: Scanning 12 images" in log and "\x1b[" not in log


def test_the_stage_label_is_dvc_yaml_s_name() -> None:
    assert stage_label(["/repo/pipelines/crop.py", "--images", "x"]) == "crop"
    assert stage_label(["pipelines/train_embedder.py", "--model", "b6"]) == "train_embedder b6"
    assert stage_label(["pipelines/select.py", "--model"]) == "select"
