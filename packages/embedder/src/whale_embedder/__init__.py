"""Embedding models for whale/dolphin re-identification: timm backbone, GeM, ArcFace; train and extract."""

from whale_embedder.config import ArcFaceConfig, AugmentConfig, EmbedderConfig
from whale_embedder.layers import ArcMarginProduct, GeM, dynamic_margins, gem
from whale_embedder.model import EmbeddingModel

__all__ = [
    "ArcFaceConfig",
    "ArcMarginProduct",
    "AugmentConfig",
    "EmbedderConfig",
    "EmbeddingModel",
    "GeM",
    "dynamic_margins",
    "gem",
]
