"""Building blocks of the embedding network: GeM pooling and the ArcFace head."""

from whale_embedder.layers.arcface import ArcMarginProduct, dynamic_margins
from whale_embedder.layers.gem import GeM, gem

__all__ = ["ArcMarginProduct", "GeM", "dynamic_margins", "gem"]
