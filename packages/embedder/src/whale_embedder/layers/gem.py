"""Generalised-mean (GeM) pooling: p = 1 is average pooling, p → ∞ approaches max pooling."""

from __future__ import annotations

import torch
from torch import nn


def gem(features: torch.Tensor, p: torch.Tensor | float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Pool a (B, C, H, W) feature map to (B, C) by the generalised mean (mean(x^p))^(1/p).

    Activations are clamped to `eps` first, so negative values (and 0^p gradients) cannot occur.
    Half-precision input is computed in fp32: x^p overflows bf16/fp16 for large p.
    """
    x = features.float() if features.dtype in (torch.float16, torch.bfloat16) else features
    x = x.clamp(min=eps)
    p = p.to(x.dtype) if isinstance(p, torch.Tensor) else float(p)
    return x.pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class GeM(nn.Module):
    """GeM pooling with an optionally learnable exponent.

    Args:
        p: initial exponent (1 = average pooling).
        eps: lower clamp of activations.
        learnable: train `p` with the network (the usual choice) or keep it fixed.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        p_tensor = torch.tensor([float(p)])
        if learnable:
            self.p = nn.Parameter(p_tensor)
        else:
            self.register_buffer("p", p_tensor)
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return gem(features, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()[0]):.3f}, eps={self.eps}, learnable={isinstance(self.p, nn.Parameter)}"
