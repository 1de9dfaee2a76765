"""The typed, frozen config of local-feature matching (params.yaml section `match.features`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from whale_core import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class MatcherConfig(Config):
    """How keypoints are extracted from crops and how a (query, gallery) pair is verified.

    Attributes:
        extractor: keypoint detector + descriptor: "rootsift" (SIFT, L1-normalised then square-rooted: unit
            L2, compared by L2), "sift" (raw SIFT, L2), "orb" / "akaze" (binary, Hamming).
        max_keypoints: keep at most this many keypoints per crop, the strongest by detector response.
        resize_px: the crop is resized (up or down, aspect kept) so that its longer side has this many pixels
            before detection; keypoint coordinates are in that frame. 0 = as stored. Marks a few pixels wide
            (nicks, scars) give SIFT keypoints only at a working size of ~400–500 px, and one size makes the
            matching independent of how large the crops were stored (demo 256 px, Kaggle 1536 px).
        ratio: Lowe's ratio test: a query keypoint matches its nearest gallery keypoint when that one is
            closer than `ratio` × the distance of the second nearest.
        mutual: also require the gallery keypoint's nearest query keypoint to be the query keypoint.
        geometry: robust fit of the matched points. "ransac" = `cv2.estimateAffinePartial2D` (similarity:
            rotation, uniform scale, shift) with RANSAC. OpenCV (5.0 and 4.x) rejects the USAC methods for
            the partial affine, so "usac_magsac" / "usac_accurate" fit a full affine with
            `cv2.estimateAffine2D(method=cv2.USAC_MAGSAC / cv2.USAC_ACCURATE)` instead.
        reproj_px: inlier threshold of the fit, in pixels of the (resized) crop.
        min_matches: the fit runs only where the ratio test leaves at least this many matches (0 inliers else).
        mirror: also match the horizontally mirrored query and keep the orientation with more inliers (ties:
            the plain one). SIFT's flipped descriptors are the crop's own, permuted (`Features.flipped_keypoints`);
            binary ones are extracted from the flipped crop.
        workers: processes for extraction and verification (1 = in this process).
        matmul: how float descriptors are compared. "fp32" = one fp32 BLAS matmul per candidate block;
            "bf16" = a bf16 matmul (torch) whose ratio-test decisions are kept only where an error bound
            proves them, the rest re-scored in fp32: the same answers, ~2× faster on CPUs with bf16
            kernels; "auto" = bf16 where the CPU multiplies bf16 natively (`whale_core.cpu`). Binary
            descriptors and `mutual` always use fp32.
        outline: also trace each crop's fin outline (`whale_matcher.outline`; ~40 ms a crop): the evidence of
            fins, whose identity lives in the nicks of the trailing edge.
        descriptor_bits: how SIFT / RootSIFT descriptors are kept in memory and in the features files
            (`whale_matcher.coding`). 8 = OpenCV's SIFT histogram bytes, exact: the answers of float32 at a
            quarter of its bytes. 4–7 = √-histogram codes of that many bits, lossy (6: 96 bytes a descriptor;
            benchmarks/features.py measures the inliers it moves). Binary descriptors are kept as they are.
    """

    SECTION = "match.features"
    RANGES = {
        "max_keypoints": "[1, 100000]",
        "resize_px": "0 or [32, 8192]",
        "ratio": "(0, 1]",
        "reproj_px": "(0, 1000]",
        "min_matches": ">= 2",  # the fewest points that determine a similarity (a full affine: 3, checked below)
        "workers": "[1, 256]",
        "descriptor_bits": "[4, 8]",  # 8 = exact
    }

    extractor: Literal["rootsift", "sift", "orb", "akaze"] = "rootsift"
    max_keypoints: int = 400
    resize_px: int = 0
    ratio: float = 0.8
    mutual: bool = False
    geometry: Literal["ransac", "usac_magsac", "usac_accurate"] = "ransac"
    reproj_px: float = 8.0
    min_matches: int = 4
    mirror: bool = True
    workers: int = 1
    matmul: Literal["auto", "fp32", "bf16"] = "auto"
    outline: bool = False
    descriptor_bits: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        where = self.SECTION
        fewest = 2 if self.geometry == "ransac" else 3  # points that determine a similarity / a full affine
        if self.min_matches < fewest:
            raise ConfigError(
                f"{where}.min_matches: {self.min_matches} is below {fewest}, the fewest points the fit needs"
            )
