"""What `whale-reid identify` loads from a pipeline run, checked once: the gallery version in use, the selected
checkpoints (each against the digest its fold recorded), the detector or given boxes, the heads and the gallery's
local features when the saved rule needs them. The crop settings come from the gallery, so a later edit of
params.yaml cannot cut crops unlike the gallery's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from whale_core import InputError, read_table
from whale_detector import CropConfig
from whale_reid.answers.compose import check_region_fusion
from whale_reid.answers.ensemble import read_selection, verified_checkpoint
from whale_reid.answers.head_scores import load_head
from whale_reid.answers.verification import gallery_features_path
from whale_reid.catalogue.versions import BASE_GALLERY, current_gallery, load_version_features
from whale_reid.common.params import load_params
from whale_reid.identify.queries import Artefacts, Member

HINT = "run `make demo` (or `dvc repro`) in the pipeline's repository first, or pass --repo"


def need(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path}: not found — {HINT}")
    return path


def read_params(repo: Path) -> dict:
    """The repo's params.yaml (the sections identify uses: `crop`, `data.raw_dir`)."""
    return load_params(need(repo / "params.yaml"))


def member_checkpoint(repo: Path, member: dict) -> Path:
    """A selected member's checkpoint `models/embedder/<model>/fold<k>/best.pt`, refused when missing or when
    it is not the file its fold summary `fold.json` recorded (`verified_checkpoint`)."""
    return verified_checkpoint(
        need(repo / "models" / "embedder" / str(member["model"]) / f"fold{int(member['fold'])}" / "best.pt")
    )


def load_members(repo: Path, members: list[dict]) -> list[Member]:
    """The selection's checkpoints `models/embedder/<model>/fold<k>/best.pt`, in the selection's order."""
    from whale_embedder import model_from_checkpoint

    loaded = []
    for member in members:
        path = member_checkpoint(repo, member)
        network, config = model_from_checkpoint(path)
        loaded.append(Member(str(member["model"]), int(member["fold"]), network, config))
    return loaded


def load_artefacts(repo: Path) -> Artefacts:
    """Everything identify needs from the pipeline run in `repo`, checked and loaded once.

    Raises:
        InputError: a missing artefact (with the hint to run the pipeline) or inconsistent ones.
    """
    selection = read_selection(need(repo / "outputs" / "selection.json"))
    need(repo / BASE_GALLERY / "gallery.npz")
    gallery, gallery_dir = current_gallery(repo)
    check_region_fusion(gallery, can_rescore=False, source=str(gallery_dir))  # before any model is loaded
    # the crops are cut as the gallery's were; a gallery saved before it recorded them: today's params.yaml
    crop = CropConfig.from_dict(gallery.settings.get("crop", read_params(repo).get("crop")))
    chosen = [(str(m["model"]), int(m["fold"])) for m in selection["members"]]
    saved = [(str(m["model"]), int(m["fold"])) for m in gallery.settings.get("members", selection["members"])]
    if chosen != saved:
        raise InputError(f"{gallery_dir} was built for members {saved}, outputs/selection.json has {chosen}: {HINT}")
    weights, boxes = None, None
    if crop.box_source == "detector":
        weights = need(repo / "models" / "detector" / "best.pt")
    elif crop.box_source == "boxes_csv":
        boxes = read_table(need(repo / str(crop.boxes_csv)))
    members = load_members(repo, selection["members"])
    artefacts = Artefacts(crop, members, gallery, gallery_dir, detector_weights=weights, given_boxes=boxes)
    if artefacts.answer_rule.blends_head:  # the rule ranks with the members' ArcFace heads too
        heads = [load_head(member_checkpoint(repo, member)) for member in selection["members"]]
        artefacts = dataclasses.replace(artefacts, heads=heads)
    if artefacts.answer_rule.calibrator is None:
        return artefacts
    regions = artefacts.match_config.regions
    for region in regions:
        need(gallery_features_path(repo / BASE_GALLERY, region))
    features = load_version_features(gallery, gallery_dir, repo / BASE_GALLERY, regions)
    return dataclasses.replace(artefacts, gallery_features=features)
