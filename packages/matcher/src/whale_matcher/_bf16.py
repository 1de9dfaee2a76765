"""A certified ratio test from a bf16 matmul (torch, optional): exact answers, fp32 only where unsure.

Why: the descriptor matmul is most of verification's time, and bf16 matmul runs ~4× the fp32 BLAS rate
on CPUs with bf16 kernels (measured: one query's 800 × 20,000 × 130 block in 11 ms vs 49 ms fp32).
bf16 scores are not exact, so they decide only where a proven error bound cannot change the decision;
the (query keypoint, candidate) cells left unsure are re-scored exactly by the caller in fp32.

The bound. Scores are T = q·g − ½|g|² (the block's last columns carry −½ and |g|², see `_batch`);
|g|² is split into two bf16 columns hi + lo (error ≤ u²|g|², u = 2⁻⁸), every other value is rounded
once, so the exact sum of the bf16 products differs from T by at most
‖q̃‖‖r_g‖ + ‖r_q‖‖g̃‖ + ‖r_q‖‖r_g‖ + ½u²G² (Cauchy–Schwarz on q·g − q̃·g̃ = q̃·r_g + r_q·g̃ + r_q·r_g, with
r = v − bf16(v) measured: ‖r_q‖ per query row, ‖r_g‖ and G = ‖g‖ the largest of the block), plus fp32
accumulation ≤ γ₁₃₀(‖q̃‖‖g̃‖ + G²),
plus the bf16 output rounding (relative u / (1 − u)). Order statistics move by no more than the
elements do, so the true best and second-best T lie in [x − c|x| − e, x + c|x| + e] of the bf16 ones.
A cell is decided when the ratio test gives the same answer at both ends of those intervals, with a
slack that also covers the fp32 path's own rounding: the decisions equal the exact ones, and the
unsure cells get the fp32 path's (which differs from exact, like BFMatcher, only within ~1e-4 of the ratio).
"""

from __future__ import annotations

import numpy as np

from whale_core.cpu import cpu_has_native_bf16

BF16_UNIT_ROUNDOFF = 2.0**-8
FP32_UNIT_ROUNDOFF = 2.0**-24
#: fp32 copy of one matmul's scores: sized to stay in a core's L2 (measured best at 1.3–2.6 MB here).
SCORE_BLOCK_BYTES = 3 << 20
_FP32_PATH_SLACK = 1e-5  # relative: ≫ the fp32 path's own rounding (~1e-7), ≪ the bf16 error bound (~1e-2)


def available() -> bool:
    """Whether torch is importable and this CPU multiplies bf16 natively (emulated bf16 is ~5× slower than fp32)."""
    return cpu_has_native_bf16()


class Bf16Query:
    """One query's bf16 rows [vec, −½, −½], their rounding residuals ‖q − bf16(q)‖, and a reused fp32
    buffer for the score blocks (copying bf16 scores into warm memory is ~20× faster than `.float()`)."""

    def __init__(self, query: np.ndarray, block_keypoints: int) -> None:
        import torch

        self.rows = torch.empty((len(query), query.shape[1] + 1), dtype=torch.bfloat16)
        self.rows[:, :-1] = torch.from_numpy(query)
        self.rows[:, -1] = -0.5
        vec = torch.from_numpy(query[:, :-1])
        self.residual = torch.linalg.vector_norm(vec - self.rows[:, :-2].float(), dim=1).double().numpy()
        self.buffer = torch.empty((len(query), block_keypoints), dtype=torch.float32)

    def scores(self, gallery_rows) -> np.ndarray:
        """fp32 [n, block rows] copy of the bf16 scores against `gallery_rows` (a view of the buffer)."""
        out = self.buffer[:, : len(gallery_rows)]
        out.copy_(self.rows @ gallery_rows.T)
        return out.numpy()


def gallery_rows(block: np.ndarray):
    """(bf16 rows [vec, hi, lo] with hi + lo ≈ |g|² to u², max ‖g − bf16(g)‖) of the fp32 block [vec, |g|²]."""
    import torch

    fp32 = torch.from_numpy(block)
    rows = torch.empty((len(block), block.shape[1] + 1), dtype=torch.bfloat16)
    rows[:, :-1] = fp32
    rows[:, -1] = fp32[:, -1] - rows[:, -2].float()
    residual = torch.linalg.vector_norm(fp32[:, :-1] - rows[:, :-2].float(), dim=1).max()
    return rows, float(residual)


def top2(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(argmax, best, second best) over the last axis of [n, K, M] scores (overwrites the best slots)."""
    import torch

    best = scores.argmax(axis=2)[..., None]
    s1 = np.take_along_axis(scores, best, axis=2)[..., 0]
    np.put_along_axis(scores, best, -np.inf, axis=2)
    return best[..., 0], s1, torch.from_numpy(scores).amax(dim=2).numpy()


def error_bounds(
    query_norm: np.ndarray, query_residual: np.ndarray, gallery_norm: float, gallery_residual: float, dim: int
) -> tuple[np.ndarray, float]:
    """(absolute bound e [n] per query row, relative output rounding c) of |T − bf16 score|.

    Args:
        query_norm, query_residual: ‖q‖ and ‖q − bf16(q)‖ of each query row (descriptor part).
        gallery_norm, gallery_residual: the largest ‖g‖ and ‖g − bf16(g)‖ of the block's rows.
        dim: descriptor length (the matmul sums dim + 2 products).
    """
    u = BF16_UNIT_ROUNDOFF
    gamma = (dim + 2) * FP32_UNIT_ROUNDOFF / (1.0 - (dim + 2) * FP32_UNIT_ROUNDOFF)
    q_bf16, g_bf16 = query_norm + query_residual, gallery_norm + gallery_residual
    rounding = q_bf16 * gallery_residual + query_residual * g_bf16 + query_residual * gallery_residual
    gg = gallery_norm**2 * (1.0 + u) ** 2
    summation = gamma * (q_bf16 * g_bf16 + gg)
    slack = _FP32_PATH_SLACK * (query_norm**2 + query_norm * gallery_norm + gg)
    return 1.01 * (rounding + 0.5 * u * u * gg + summation) + slack, u / (1.0 - u)


def decide(
    s1: np.ndarray, s2: np.ndarray, query_sq: np.ndarray, e: np.ndarray, c: float, ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """(passes, unsure) [n, K] of the ratio test d1 < ratio · d2 from bf16 best / second-best scores.

    d² = |q|² − 2T; a cell passes for sure when its largest possible d1 is below ratio × its smallest
    possible d2, fails for sure when its smallest d1 is at least ratio × its largest d2.
    """
    s1, s2 = s1.astype(np.float64), s2.astype(np.float64)
    e, sq, r2 = e[:, None], query_sq.astype(np.float64)[:, None], ratio * ratio
    lo1, hi1 = s1 - c * np.abs(s1) - e, s1 + c * np.abs(s1) + e
    lo2, hi2 = s2 - c * np.abs(s2) - e, s2 + c * np.abs(s2) + e
    passes = np.maximum(sq - 2 * lo1, 0.0) < r2 * np.maximum(sq - 2 * hi2, 0.0)
    fails = np.maximum(sq - 2 * hi1, 0.0) >= r2 * np.maximum(sq - 2 * lo2, 0.0)
    return passes, ~(passes | fails)
