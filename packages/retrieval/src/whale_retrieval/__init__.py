"""Embeddings to five answers: MAP@5, exact kNN, the one answer rule (with calibrated fusion of local
evidence), `new_individual` post-processing, tuning, ensembles.

Pure numpy + FAISS + scikit-learn + Optuna + pandas (no torch): usable by the embedder for
validation MAP@5 and by the tune/predict stages.
"""

from whale_retrieval.answers import AnswerRule, Answers, pool_neighbours
from whale_retrieval.calibration import PairCalibrator, fit_calibrator
from whale_retrieval.config import KnnConfig, TuneConfig
from whale_retrieval.ensemble import concat_embeddings
from whale_retrieval.gallery import GalleryIndex
from whale_retrieval.knn import build_index, check_embeddings, knn_recall_at_k, knn_search, knn_search_allowed
from whale_retrieval.metrics import NEW_INDIVIDUAL, known_new_groups, map_at_5, map_at_5_by_group, map_at_5_per_image
from whale_retrieval.postprocess import PostProcessing, RetrievalSplit, StackedNeighbours, stack_splits
from whale_retrieval.ranking import (
    PAD_ID,
    PAD_SCORE,
    ClassifierScores,
    RankedIndividuals,
    most_frequent_ids,
    rank_individuals,
)
from whale_retrieval.thresholds import (
    insert_new_individual,
    map5_with_threshold,
    new_share_at,
    query_species,
    species_thresholds,
    sweep_thresholds,
    threshold_for_new_share,
    threshold_for_truth_share,
)
from whale_retrieval.tuning import TuneResult, threshold_grid, tune_on_neighbours

__all__ = [
    "ClassifierScores",
    "NEW_INDIVIDUAL",
    "AnswerRule",
    "Answers",
    "PairCalibrator",
    "PAD_ID",
    "PAD_SCORE",
    "GalleryIndex",
    "KnnConfig",
    "RankedIndividuals",
    "PostProcessing",
    "RetrievalSplit",
    "StackedNeighbours",
    "TuneConfig",
    "TuneResult",
    "build_index",
    "check_embeddings",
    "concat_embeddings",
    "fit_calibrator",
    "insert_new_individual",
    "knn_recall_at_k",
    "knn_search",
    "knn_search_allowed",
    "known_new_groups",
    "map5_with_threshold",
    "map_at_5",
    "map_at_5_by_group",
    "map_at_5_per_image",
    "most_frequent_ids",
    "pool_neighbours",
    "query_species",
    "rank_individuals",
    "species_thresholds",
    "stack_splits",
    "sweep_thresholds",
    "new_share_at",
    "threshold_for_new_share",
    "threshold_for_truth_share",
    "threshold_grid",
    "tune_on_neighbours",
]
