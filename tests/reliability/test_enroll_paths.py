"""A tampered identify folder or catalogue cannot make `enroll` read or write outside the folders it owns.

`query_embeddings.npz` names the gallery image ids (which become file names in `models/catalogue/crops/`)
and the crops to copy there; `models/catalogue/CURRENT` names the gallery version. All three are data from
files someone may hand over, so each is refused unless it stays inside its folder, symlinks included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.catalogue import make_repo, write_decisions, write_run
from whale_core import InputError
from whale_reid.catalogue.enroll import enroll
from whale_reid.catalogue.versions import CATALOGUE


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def setting(tmp_path: Path) -> dict:
    secret = tmp_path / "secret.txt"
    secret.write_text("a colleague's private file\n")
    repo = make_repo(tmp_path / "repo")
    ident = tmp_path / "identify"
    return {"tmp": tmp_path, "repo": repo, "identify": ident, "secret": secret,
            "decisions": write_decisions(tmp_path / "decisions.csv", 1)}  # fmt: skip


def test_a_clean_identify_folder_enrolls(setting: dict) -> None:
    repo, ident = setting["repo"], setting["identify"]
    write_run(ident, repo, ["abc-p0.jpg"], ["crops/fullbody/query/00000-p0.jpg"])
    result = enroll(repo, setting["decisions"], ident)
    assert result.version == "v0001"
    assert (repo / CATALOGUE / "crops/abc-p0.jpg.jpg").is_file()


@pytest.mark.parametrize(
    ("image_id", "crop", "needle"),
    [
        ("../../../../tmp/PWNED", "crops/fullbody/query/00000-p0.jpg", "is not a plain file name"),
        ("abc-p0.jpg", "/etc/hostname", "is an absolute path"),
        ("abc-p0.jpg", "../secret.txt", "leads out of"),
        ("abc-p0.jpg", "crops/fullbody/query/link.jpg", "leads out of"),
    ],
    ids=["image-id-climbs-out", "absolute-crop", "crop-climbs-out", "crop-symlink-out"],
)
def test_tampered_identify_folder_is_refused_and_nothing_is_written(setting: dict, image_id, crop, needle) -> None:
    repo, ident, tmp = setting["repo"], setting["identify"], setting["tmp"]
    write_run(ident, repo, [image_id], [crop])
    before = _tree(tmp)
    with pytest.raises(InputError, match=needle):
        enroll(repo, setting["decisions"], ident)
    assert _tree(tmp) == before  # no PWNED file, no copy of a foreign file, no catalogue version
    assert not (tmp / "tmp").exists() and not Path("/tmp/PWNED.jpg").exists()


def test_a_current_pointer_out_of_the_catalogue_is_refused(setting: dict) -> None:
    repo, ident = setting["repo"], setting["identify"]
    write_run(ident, repo, ["abc-p0.jpg"], ["crops/fullbody/query/00000-p0.jpg"])
    (repo / CATALOGUE).mkdir(parents=True)
    (repo / CATALOGUE / "CURRENT").write_text("../../../gallery\n")
    with pytest.raises(InputError, match="gallery version in .*CURRENT"):
        enroll(repo, setting["decisions"], ident)
