"""Descriptor codings (`whale_matcher.coding`) and joined rows (`whale_matcher._rows`) against plain numpy."""

import numpy as np
import pytest

from whale_matcher import Coding
from whale_matcher._rows import RowChain


def _histograms(n: int = 50) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = rng.integers(0, 164, (n, 128)).astype(np.uint8)
    out[0] = 0  # a descriptor of nothing
    out[1, :] = 255  # the extremes
    return out


def test_exact_bytes_decode_to_sift_and_rootsift():
    h = _histograms()
    assert Coding("sift").encode(h) is h
    np.testing.assert_array_equal(Coding("sift").decode(h), h.astype(np.float32))
    root = Coding("rootsift").decode(h)
    l1 = h.sum(axis=1, keepdims=True, dtype=np.float64)
    np.testing.assert_allclose(root[1:], np.sqrt(h[1:] / l1[1:]), rtol=1e-6)  # RootSIFT's definition
    assert (root[0] == 0).all()


@pytest.mark.parametrize("bits", [4, 5, 6, 7])
def test_codes_pack_to_bits_and_round_sqrt_counts_by_half_a_step(bits):
    h = _histograms()
    coding = Coding("sift", bits)
    stored = coding.encode(h)
    assert stored.dtype == np.uint8 and stored.shape == (len(h), 16 * bits)
    coding.check(stored)
    step = np.sqrt(255.0) / (2**bits - 1)  # the code's unit in √h
    error = np.abs(np.sqrt(coding.decode(stored).astype(np.float64)) - np.sqrt(h.astype(np.float64)))
    assert error.max() <= step / 2 + 1e-5
    root = Coding("rootsift", bits).decode(stored)
    np.testing.assert_allclose(np.linalg.norm(root[1:], axis=1), 1.0, atol=1e-6)  # unit length like RootSIFT
    np.testing.assert_allclose(root[1:], np.sqrt(coding.decode(stored)[1:]) / np.linalg.norm(
        np.sqrt(coding.decode(stored)[1:]), axis=1, keepdims=True), rtol=1e-5)  # fmt: skip


def test_bad_codings_and_arrays_are_refused():
    with pytest.raises(ValueError, match="3 bits"):
        Coding("rootsift", 3)
    with pytest.raises(ValueError, match="float: 6 bits"):
        Coding("float", 6)
    with pytest.raises(ValueError, match="unknown"):
        Coding("surf")
    with pytest.raises(ValueError, match="not of coding rootsift 6-bit"):
        Coding("rootsift", 6).check(np.zeros((2, 128), np.uint8))
    assert Coding("rootsift").compatible(Coding("float")) and not Coding("rootsift").compatible(Coding("sift"))
    assert not Coding("binary").compatible(Coding("float"))


def test_row_chain_indexes_like_the_concatenation():
    rng = np.random.default_rng(1)
    parts = [rng.random((n, 3)).astype(np.float32) for n in (4, 0, 6, 2)]
    chain, whole = RowChain([parts[0], RowChain(parts[1:3]), parts[3]]), np.concatenate(parts)
    assert len(chain) == 12 and chain.shape == (12, 3) and chain.dtype == np.float32 and len(chain.parts) == 4
    for key in (5, -1, slice(3, 9), slice(None, None, -2), np.array([11, 0, 4, 4, -12]), whole[:, 0] > 0.5,
                (slice(None), 1)):  # fmt: skip
        np.testing.assert_array_equal(chain[key], whole[key])
    np.testing.assert_array_equal(np.asarray(chain), whole)
    with pytest.raises(IndexError):
        chain[np.array([12])]
    with pytest.raises(ValueError, match="parts differ"):
        RowChain([parts[0], parts[1].astype(np.float64)])
