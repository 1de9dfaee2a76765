"""The README for both readers: the two commands first, what you get, identifying your own photos before the
developer details, and every fenced block marked `<!-- runnable -->` works as written after the demo."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_in

README = REPO_ROOT / "README.md"
MARKER = "<!-- runnable -->"


def runnable_blocks(text: str) -> list[str]:
    """The bodies of the fenced blocks right after a `<!-- runnable -->` line."""
    return re.findall(re.escape(MARKER) + r"\n```[a-z]*\n(.*?)\n```", text, flags=re.S)


def test_the_readme_opens_with_the_two_commands_then_what_you_get_then_identify() -> None:
    text = README.read_text()
    first = re.search(r"```bash\n(.*?)\n```", text, flags=re.S).group(1)
    assert [line.split("#")[0].strip() for line in first.splitlines()] == ["make demo", "make test"]
    order = [text.index(h) for h in ("## What you get", "## Identify your own photos", "## What runs where",
                                     "## Development")]  # fmt: skip
    assert order == sorted(order)
    assert "(docs/review_page.png)" in text[order[0] : order[1]] and (REPO_ROOT / "docs/review_page.png").is_file()
    blocks = runnable_blocks(text)
    assert len(blocks) >= 2 and any("whale-reid identify data/demo/test_images" in b for b in blocks)


@pytest.mark.slow
def test_every_runnable_readme_block_works_after_the_demo(tiny_pipeline: Path, tmp_path: Path) -> None:
    repo = Path(shutil.copytree(tiny_pipeline, tmp_path / "repo", symlinks=True))
    for block in runnable_blocks(README.read_text()):
        # the venv the README activates is the one these tests run in (run_in puts its tools first on PATH)
        script = "\n".join(line for line in block.splitlines() if not line.startswith("source .venv/"))
        proc = run_in(repo, "bash", "-euo", "pipefail", "-c", script)
        assert proc.returncode == 0, f"{script}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert (repo / "survey-demo/matches.csv").is_file()
