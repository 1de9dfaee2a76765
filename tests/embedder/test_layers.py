"""GeM and ArcFace against formulas re-derived here, in every branch of the margin rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from whale_embedder import ArcMarginProduct, GeM, dynamic_margins, gem


def test_gem_p1_is_average_pooling_and_large_p_approaches_max():
    x = torch.rand(3, 5, 7, 6) + 0.01
    torch.testing.assert_close(GeM(p=1.0, learnable=False)(x), x.mean(dim=(2, 3)))
    big = gem(x.double(), p=200.0)
    torch.testing.assert_close(big, x.double().amax(dim=(2, 3)), rtol=0.02, atol=0)
    assert torch.all(big <= x.double().amax(dim=(2, 3)) + 1e-9)


def test_gem_p3_matches_formula_and_p_is_learnable():
    x = torch.rand(2, 4, 3, 3)
    pool = GeM(p=3.0, learnable=True)
    expected = (x.clamp(min=1e-6) ** 3).mean(dim=(2, 3)) ** (1 / 3)
    out = pool(x)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert pool.p.grad is not None and torch.isfinite(pool.p.grad).all()
    assert not list(GeM(learnable=False).parameters())


def arcface_oracle(cos, labels, s, m, easy_margin, ls_eps):
    """The ArcFace rule written out element by element in float64 (m: per-sample margins)."""
    n, c = cos.shape
    out = np.empty_like(cos)
    for i in range(n):
        mi = m[i]
        for j in range(c):
            ct = cos[i, j]
            phi = math.cos(math.acos(ct) + mi)  # cos(θ + m)
            if easy_margin:
                phi = phi if ct > 0 else ct
            else:
                phi = phi if ct > math.cos(math.pi - mi) else ct - mi * math.sin(mi)
            t = (1.0 if j == labels[i] else 0.0) * (1 - ls_eps) + ls_eps / c
            out[i, j] = s * (t * phi + (1 - t) * ct)
    return out


def head_cosines(head, emb):
    return (F.normalize(emb.double()) @ F.normalize(head.weight.detach().double()).T).numpy()


@pytest.mark.parametrize("easy_margin", [False, True])
@pytest.mark.parametrize("ls_eps", [0.0, 0.1])
def test_arcface_logits_match_formula_in_all_branches(easy_margin, ls_eps):
    torch.manual_seed(0)
    m, n_classes = 1.2, 6  # a large margin puts many targets in the fallback region cos θ <= cos(π − m)
    head = ArcMarginProduct(8, n_classes, s=30.0, m=m, easy_margin=easy_margin, ls_eps=ls_eps)
    emb = torch.randn(64, 8)
    labels = torch.randint(0, n_classes, (64,))
    cos = head_cosines(head, emb)
    target_cos = cos[np.arange(64), labels.numpy()]
    assert (target_cos > 0).any() and (target_cos < 0).any()
    assert (target_cos <= math.cos(math.pi - m)).any() and (target_cos > math.cos(math.pi - m)).any()
    expected = arcface_oracle(cos, labels.numpy(), 30.0, np.full(64, m), easy_margin, ls_eps)
    np.testing.assert_allclose(head(emb, labels).detach().double().numpy(), expected, atol=2e-4)


def test_subcenter_k1_is_plain_arcface_and_k3_takes_the_max():
    torch.manual_seed(1)
    plain = ArcMarginProduct(8, 5, s=16.0, m=0.4)
    sub1 = ArcMarginProduct(8, 5, s=16.0, m=0.4, subcenters=1)
    sub1.load_state_dict(plain.state_dict())
    emb, labels = torch.randn(10, 8), torch.randint(0, 5, (10,))
    torch.testing.assert_close(sub1(emb, labels), plain(emb, labels))

    sub3 = ArcMarginProduct(8, 5, s=16.0, m=0.4, subcenters=3)
    all_cos = head_cosines(sub3, emb).reshape(10, 5, 3)  # rows are class-major: class c = rows 3c..3c+2
    expected = arcface_oracle(all_cos.max(axis=2), labels.numpy(), 16.0, np.full(10, 0.4), False, 0.0)
    np.testing.assert_allclose(sub3(emb, labels).detach().double().numpy(), expected, atol=2e-4)


def test_dynamic_margins_follow_the_count_rule_and_apply_per_target_class():
    counts = np.array([1, 4, 16, 81])
    margins = dynamic_margins(counts, a=0.5, lam=0.25, b=0.05)
    np.testing.assert_allclose(margins, [0.55, 0.5 / math.sqrt(2) + 0.05, 0.3, 0.5 / 3 + 0.05], rtol=1e-6)
    torch.manual_seed(2)
    head = ArcMarginProduct(8, 4, s=10.0, margins=margins)
    emb, labels = torch.randn(12, 8), torch.tensor([0, 1, 2, 3] * 3)
    expected = arcface_oracle(head_cosines(head, emb), labels.numpy(), 10.0, margins[labels.numpy()], False, 0.0)
    np.testing.assert_allclose(head(emb, labels).detach().double().numpy(), expected, atol=2e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_no_nan_at_cos_plus_minus_one(dtype):
    head = ArcMarginProduct(4, 3, s=30.0, m=0.5)
    w = head.weight.detach().clone()
    emb = torch.cat([w[:1], -w[1:2], w[2:3] * 5]).requires_grad_(True)  # cos = +1, -1, +1 on the targets
    labels = torch.tensor([0, 1, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        logits = head(emb.to(dtype), labels)
        loss = F.cross_entropy(logits, labels)
    loss.backward()
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all() and torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()
