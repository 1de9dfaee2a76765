"""ArcFace (additive angular margin) head, with sub-centres and per-class dynamic margins as options.

logit_j = s · cos θ_j for j ≠ y and s · cos(θ_y + m) for the target y, where the margin is applied
only in the region where θ + m stays monotone: with `easy_margin` where cos θ > 0 (else cos θ),
otherwise where cos θ > cos(π − m) (else the linear fallback cos θ − m·sin m).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: cos θ is kept this far inside [-1, 1] so that sqrt(1 − cos²) has a finite gradient.
COS_CLAMP_EPS = 1e-6


def dynamic_margins(class_counts: np.ndarray, a: float = 0.5, lam: float = 0.25, b: float = 0.05) -> np.ndarray:
    """Per-class margins m_c = a · count_c^(−λ) + b (1st-place rule: rare classes get larger margins)."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    return (a * counts ** (-lam) + b).astype(np.float32)


class ArcMarginProduct(nn.Module):
    """Cosine classifier with an additive angular margin on the target class.

    Args:
        in_features: embedding size.
        out_features: number of classes.
        s: logit scale.
        m: margin in radians (used when `margins` is None).
        easy_margin: margin only where cos θ > 0.
        ls_eps: label smoothing; the target weight becomes (1 − ls_eps) + ls_eps / C, others ls_eps / C.
        subcenters: k weight vectors per class; cos θ is the max over them (sub-center ArcFace).
        margins: optional per-class margins in radians, shape (C,) (dynamic margins).

    The head always runs in fp32 (autocast is switched off inside), so bf16/fp16 training cannot
    round cos θ onto ±1.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        s: float = 30.0,
        m: float = 0.5,
        easy_margin: bool = False,
        ls_eps: float = 0.0,
        subcenters: int = 1,
        margins: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.s, self.easy_margin, self.ls_eps, self.subcenters = s, easy_margin, ls_eps, subcenters
        self.weight = nn.Parameter(torch.empty(out_features * subcenters, in_features))
        nn.init.xavier_uniform_(self.weight)
        if margins is None:
            margin_tensor = torch.full((out_features,), float(m))
        else:
            margin_tensor = torch.as_tensor(np.asarray(margins, dtype=np.float32)).reshape(-1)
            if margin_tensor.numel() != out_features:
                raise ValueError(f"margins has {margin_tensor.numel()} values for {out_features} classes")
        self.register_buffer("margins", margin_tensor.float())

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos θ between the embeddings and each class (max over sub-centres), shape (B, C), fp32."""
        cos = F.linear(F.normalize(embeddings.float()), F.normalize(self.weight.float()))
        if self.subcenters > 1:
            cos = cos.view(-1, self.out_features, self.subcenters).amax(dim=2)
        return cos.clamp(-1.0 + COS_CLAMP_EPS, 1.0 - COS_CLAMP_EPS)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits (B, C) with the margin on each row's target class (labels: int64, (B,))."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            cos = self.cosine(embeddings)
            m = self.margins[labels].unsqueeze(1)  # (B, 1): each sample's target-class margin
            sin = torch.sqrt(1.0 - cos * cos)
            phi = cos * torch.cos(m) - sin * torch.sin(m)
            if self.easy_margin:
                phi = torch.where(cos > 0, phi, cos)
            else:
                phi = torch.where(cos > torch.cos(math.pi - m), phi, cos - m * torch.sin(m))
            target = F.one_hot(labels, self.out_features).float()
            if self.ls_eps > 0:
                target = (1.0 - self.ls_eps) * target + self.ls_eps / self.out_features
            return self.s * (target * phi + (1.0 - target) * cos)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, classes={self.out_features}, s={self.s}, "
            f"easy_margin={self.easy_margin}, ls_eps={self.ls_eps}, subcenters={self.subcenters}"
        )
