"""One tiny demo rendering shared by the demo tests (about a second)."""

from __future__ import annotations

from pathlib import Path

import pytest

from whale_reid.demo import TINY_DEMO, DemoSummary, generate_demo


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> tuple[Path, DemoSummary]:
    out = tmp_path_factory.mktemp("demo") / "raw"
    return out, generate_demo(TINY_DEMO, out)
