"""Local-feature verification of whale/dolphin crop pairs: keypoints, ratio test, geometric inliers.

RootSIFT (default), SIFT, ORB or AKAZE keypoints are extracted per crop (binary ones per mirrored crop too) into a
CSR `Features` cache (SIFT kept as its histogram bytes, `whale_matcher.coding`; files memory-mapped on
read, `whale_matcher.storage`); `verify_pairs` re-scores (query, gallery) candidate pairs by ratio-test matches and
RANSAC inliers, batched per query. OpenCV + numpy; torch, when installed with bf16 kernels, only speeds
up the descriptor matmul (`MatcherConfig.matmul`, same answers). `synthetic` and `reference` hold the
textured test crops and the plain per-pair OpenCV loop that tests and benchmarks compare against. With
`MatcherConfig.outline`, each crop's fin outline is traced too (`whale_matcher.outline`: GrabCut silhouette,
integral curvature from the tip) and `outline_distance` compares two by dynamic time warping.
"""

from whale_matcher.coding import Coding
from whale_matcher.config import MatcherConfig
from whale_matcher.extractors import EXTRACTORS, Extractor, akaze_available, make_extractor, register
from whale_matcher.features import Features, extract_features
from whale_matcher.outline import Outline, outline_distance, trace_outline
from whale_matcher.storage import load_features, save_features
from whale_matcher.verify import PairEvidence, draw_matches, match_pair, match_photos, verify_pairs

__all__ = [
    "EXTRACTORS",
    "Coding",
    "Extractor",
    "Features",
    "akaze_available",
    "MatcherConfig",
    "Outline",
    "PairEvidence",
    "draw_matches",
    "extract_features",
    "load_features",
    "make_extractor",
    "match_pair",
    "match_photos",
    "outline_distance",
    "register",
    "save_features",
    "trace_outline",
    "verify_pairs",
]
