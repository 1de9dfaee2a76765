"""Local-feature verification of whale/dolphin crop pairs: keypoints, ratio test, geometric inliers.

RootSIFT (default), SIFT, ORB or AKAZE keypoints are extracted per crop (and per mirrored crop) into a
CSR `Features` cache; `verify_pairs` re-scores (query, gallery) candidate pairs by ratio-test matches and
RANSAC inliers, batched per query. Pure OpenCV + numpy, no torch: the retrieval and predict stages use it.
"""

from whale_matcher.config import MatcherConfig
from whale_matcher.extractors import EXTRACTORS, Extractor, akaze_available, make_extractor, register
from whale_matcher.features import Features, extract_features, load_features, save_features
from whale_matcher.verify import PairEvidence, draw_matches, match_pair, match_photos, verify_pairs

__all__ = [
    "EXTRACTORS",
    "Extractor",
    "Features",
    "akaze_available",
    "MatcherConfig",
    "PairEvidence",
    "draw_matches",
    "extract_features",
    "load_features",
    "make_extractor",
    "match_pair",
    "match_photos",
    "register",
    "save_features",
    "verify_pairs",
]
