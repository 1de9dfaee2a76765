"""Embedding models for whale/dolphin re-identification: timm backbone, GeM, ArcFace; train and extract."""

from whale_embedder.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from whale_embedder.config import ArcFaceConfig, AugmentConfig, EmbedderConfig
from whale_embedder.evaluate import evaluate_model, fold_truth, score_embeddings
from whale_embedder.extract import extract_embeddings, save_embeddings
from whale_embedder.layers import ArcMarginProduct, GeM, dynamic_margins, gem
from whale_embedder.model import EmbeddingModel
from whale_embedder.train import FoldResult, train_fold

__all__ = [
    "ArcFaceConfig",
    "ArcMarginProduct",
    "AugmentConfig",
    "EmbedderConfig",
    "EmbeddingModel",
    "FoldResult",
    "GeM",
    "dynamic_margins",
    "evaluate_model",
    "extract_embeddings",
    "fold_truth",
    "gem",
    "load_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
    "save_embeddings",
    "score_embeddings",
    "train_fold",
]
