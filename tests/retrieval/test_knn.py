"""knn_search against a numpy brute force: values, order, ties (lowest gallery index first), errors."""

from __future__ import annotations

import numpy as np
import pytest

from whale_core import InputError
from whale_retrieval import KnnConfig, knn_recall_at_k, knn_search, rank_individuals


def brute_force(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full cosine matrix sorted by (similarity desc, index asc)."""
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sims = (q @ g.T).astype(np.float32)
    gallery_index = np.broadcast_to(np.arange(len(gallery)), sims.shape)
    order = np.lexsort((gallery_index, -sims), axis=1)[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


EXACT_BACKENDS = ["blas", "faiss"]


@pytest.mark.parametrize("backend", EXACT_BACKENDS)
@pytest.mark.parametrize("chunk_size", [None, 1, 7, 64])
def test_matches_brute_force_on_random_data(chunk_size: int | None, backend: str) -> None:
    rng = np.random.default_rng(0)
    query, gallery = rng.normal(size=(101, 24)), rng.normal(size=(333, 24)) * 3.0
    sims, idx = knn_search(query, gallery, 10, chunk_size=chunk_size, config=KnnConfig(backend=backend))
    want_sims, want_idx = brute_force(query, gallery, 10)
    assert sims.dtype == np.float32 and idx.dtype == np.int64 and sims.shape == (101, 10)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(sims, want_sims, atol=1e-6)
    assert (np.diff(sims, axis=1) <= 0).all()


def exact_tie_vectors(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    """Unit vectors with four entries of ±0.5: every dot product is a multiple of 1/4, exact in float32."""
    out = np.zeros((n, dim), dtype=np.float32)
    for row in out:
        row[rng.choice(dim, size=4, replace=False)] = rng.choice([-0.5, 0.5], size=4)
    return out


@pytest.mark.parametrize("backend", EXACT_BACKENDS)
@pytest.mark.parametrize("k", [1, 3, 10, 300])
def test_ties_go_to_the_lowest_gallery_index_even_at_the_kth_place(k: int, backend: str) -> None:
    rng = np.random.default_rng(1)
    query, gallery = exact_tie_vectors(rng, 40), exact_tie_vectors(rng, 300)
    sims, idx = knn_search(query, gallery, k, chunk_size=13, config=KnnConfig(backend=backend))
    want_sims, want_idx = brute_force(query, gallery, k)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(sims, want_sims)


def test_duplicate_gallery_rows_are_listed_in_index_order() -> None:
    rng = np.random.default_rng(2)
    gallery = rng.normal(size=(50, 8))
    gallery[[7, 30, 44]] = gallery[3]
    _, idx = knn_search(gallery[3:4], gallery, 4)
    assert idx[0].tolist() == [3, 7, 30, 44]


def test_k_is_capped_at_the_gallery_size() -> None:
    rng = np.random.default_rng(3)
    sims, idx = knn_search(rng.normal(size=(5, 4)), rng.normal(size=(3, 4)), 10)
    assert sims.shape == (5, 3) and sorted(idx[0].tolist()) == [0, 1, 2]


@pytest.mark.parametrize(
    ("which", "bad_rows", "value", "message"),
    [
        ("query", [2, 9], np.nan, r"query embeddings: 2 row\(s\) contain NaN or inf \(rows 2, 9\)"),
        ("gallery", [0], np.inf, r"gallery embeddings: 1 row\(s\) contain NaN or inf \(rows 0\)"),
        ("gallery", [4, 5, 6, 7, 8, 11], 0.0, r"gallery embeddings: 6 row\(s\) have zero norm \(rows 4, 5, 6, 7, 8, "),
    ],
)
def test_bad_rows_are_named(which: str, bad_rows: list[int], value: float, message: str) -> None:
    rng = np.random.default_rng(4)
    arrays = {"query": rng.normal(size=(12, 6)), "gallery": rng.normal(size=(20, 6))}
    if value == 0.0:
        arrays[which][bad_rows] = 0.0
    else:
        arrays[which][bad_rows, 1] = value
    with pytest.raises(InputError, match=message):
        knn_search(arrays["query"], arrays["gallery"], 3)


def test_shape_errors() -> None:
    with pytest.raises(InputError, match="dimension 4 differs from gallery dimension 5"):
        knn_search(np.ones((2, 4)), np.ones((3, 5)), 1)
    with pytest.raises(InputError, match="2-D"):
        knn_search(np.ones(4), np.ones((3, 4)), 1)
    with pytest.raises(InputError, match="k must be at least 1"):
        knn_search(np.ones((2, 4)), np.ones((3, 4)), 0)


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_indexes_report_recall(index: str) -> None:
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(20, 32))
    gallery = np.repeat(centres, 100, axis=0) + 0.3 * rng.normal(size=(2000, 32))
    query = centres[rng.integers(0, 20, 50)] + 0.3 * rng.normal(size=(50, 32))
    config = KnnConfig(index=index, ivf_nlist=16, ivf_nprobe=16, hnsw_ef_search=256)
    # visiting every IVF cell is exhaustive, and HNSW with a wide beam on 2k points finds nearly all
    recall = knn_recall_at_k(query, gallery, 10, config)
    assert recall >= (1.0 if index == "ivf" else 0.95)


BF16 = KnnConfig(backend="torch_bf16")


@pytest.mark.parametrize(("k", "chunk_size"), [(1, None), (10, 7), (40, 64)])
def test_bf16_backend_matches_brute_force(k: int, chunk_size: int | None) -> None:
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(30, 48))
    gallery = centres[rng.integers(0, 30, 400)] + 0.5 * rng.normal(size=(400, 48))
    query = centres[rng.integers(0, 30, 90)] + 0.5 * rng.normal(size=(90, 48))
    sims, idx = knn_search(query, gallery, k, chunk_size=chunk_size, config=BF16)
    want_sims, want_idx = brute_force(query, gallery, k)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(sims, want_sims, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 10, 100])
def test_bf16_backend_ties_and_thin_margins_fall_back_to_exact(k: int) -> None:
    # every score is a multiple of 1/4: the k-th place is almost always tied with excluded rows, so the
    # margin test fails and the wider round (k=100: the whole 300-row gallery) or the full scan decides
    rng = np.random.default_rng(1)
    query, gallery = exact_tie_vectors(rng, 40), exact_tie_vectors(rng, 300)
    sims, idx = knn_search(query, gallery, k, chunk_size=13, config=BF16)
    want_sims, want_idx = brute_force(query, gallery, k)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(sims, want_sims)


@pytest.mark.parametrize(
    "config", [KnnConfig(backend="blas"), KnnConfig(backend="faiss"), BF16], ids=["blas", "faiss", "torch_bf16"]
)
def test_near_ties_follow_float64_order(config: KnnConfig) -> None:
    # gallery rows that differ by ~1e-9 in score: fp32 cannot order them, float64 can
    rng = np.random.default_rng(4)
    base = rng.normal(size=512)
    gallery = base + 1e-8 * rng.normal(size=(60, 512))
    query = base + 0.5 * rng.normal(size=(3, 512))
    _, idx = knn_search(query, gallery, 10, config=config)
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    exact = (gallery @ q.T).T / np.linalg.norm(gallery, axis=1)
    want = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, want)


def test_nth_distinct_position_known_answers() -> None:
    from whale_retrieval.knn_bf16 import nth_distinct_position

    codes = np.array([[3, 3, 1, 3, 2, 1, 4], [0, 1, 2, 3, 4, 5, 6]])
    # row 0: labels 3, 1, 2, 4 first appear at positions 0, 2, 4, 6; row 1: every position is new
    np.testing.assert_array_equal(nth_distinct_position(codes, 1), [0, 0])
    np.testing.assert_array_equal(nth_distinct_position(codes, 3), [4, 2])
    np.testing.assert_array_equal(nth_distinct_position(codes, 4), [6, 3])
    np.testing.assert_array_equal(nth_distinct_position(codes, 5), [7, 4])  # row 0 has only four labels


def test_pool_sizes_end_at_the_first_candidate_the_bound_leaves_out() -> None:
    from whale_retrieval.knn_bf16 import POOL_STEP, _pool_sizes

    # k = 3, no labels: position 2 must be exact; a pool of j candidates leaves top_vals[:, j] out, and its bound
    # is that score + 2⁻⁸ of it (bf16 output rounding) + the query's error (0.01 here)
    tail = [0.1, 0.05, 0.0, -0.05, -0.1, -0.15]
    top_vals = np.array(
        [
            [0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, *tail],  # 0.5 is far below 0.7: 3 candidates, rounded up
            [0.9, 0.8, 0.7, 0.699, 0.698, 0.69, 0.5, *tail],  # three more within the bound: 6
            [0.9, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, *([0.7] * 6)],  # nothing leaves 0.7's bound: the whole pool
        ]
    )
    error = np.full(3, 0.01)
    pools = _pool_sizes(top_vals, np.zeros(top_vals.shape, np.int64), error, 12, 3, None)

    def rounded(n: int) -> int:
        return min(12, -(-n // POOL_STEP) * POOL_STEP)

    np.testing.assert_array_equal(pools, [rounded(3), rounded(6), 12])
    # with labels the needed position is the second distinct label's first row: 4 here, so at least 5 candidates
    codes = np.array([[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]] * 3)
    label_pools = _pool_sizes(top_vals, np.tile(np.arange(13), (3, 1)), error, 12, 100, (codes[0], 2))
    np.testing.assert_array_equal(label_pools, [rounded(5), rounded(6), 12])


def label_prefix_lengths(idx: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Per row of exact neighbours: how many leading neighbours it takes to see n distinct labels (all if fewer)."""
    lengths = []
    for row in idx:
        seen: set[str] = set()
        length = len(row)
        for position, i in enumerate(row):
            seen.add(labels[i])
            if len(seen) == n:
                length = position + 1
                break
        lengths.append(length)
    return np.array(lengths)


@pytest.mark.parametrize(("photos_per_individual", "k", "chunk_size"), [(1, 50, None), (12, 50, 16), (40, 30, 33)])
def test_bf16_label_aware_search_is_exact_where_ranking_looks(photos_per_individual: int, k: int, chunk_size) -> None:
    # many photos per individual push the 5th distinct individual deep into the list (past k for 40)
    rng = np.random.default_rng(8)
    n_individuals = 600 // photos_per_individual
    centres = rng.normal(size=(n_individuals, 64))
    labels = np.repeat(np.arange(n_individuals), photos_per_individual).astype(str)
    gallery = centres[np.repeat(np.arange(n_individuals), photos_per_individual)] + 0.6 * rng.normal(size=(600, 64))
    query = centres[rng.integers(0, n_individuals, 80)] + 0.6 * rng.normal(size=(80, 64))
    sims, idx = knn_search(query, gallery, k, chunk_size=chunk_size, config=BF16, gallery_labels=labels)
    want_sims, want_idx = brute_force(query, gallery, k)
    for row, length in enumerate(np.minimum(label_prefix_lengths(want_idx, labels, 5), k)):
        np.testing.assert_array_equal(idx[row, :length], want_idx[row, :length])
        np.testing.assert_allclose(sims[row, :length], want_sims[row, :length], atol=1e-6)
    got = rank_individuals(sims, idx, labels, 5)
    want = rank_individuals(want_sims, want_idx, labels, 5)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)


def test_bf16_label_aware_search_with_ties_matches_exact_ranking() -> None:
    rng = np.random.default_rng(2)
    query, gallery = exact_tie_vectors(rng, 40), exact_tie_vectors(rng, 300)
    labels = rng.integers(0, 60, 300).astype(str)
    sims, idx = knn_search(query, gallery, 20, chunk_size=9, config=BF16, gallery_labels=labels)
    want_sims, want_idx = brute_force(query, gallery, 20)
    got, want = rank_individuals(sims, idx, labels, 5), rank_individuals(want_sims, want_idx, labels, 5)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.scores, want.scores)


@pytest.mark.parametrize("prepack", [False, True], ids=["plain bf16 blocks", "blocks packed for oneDNN"])
@pytest.mark.parametrize("ties", [False, True], ids=["random", "exact ties"])
def test_bf16_search_over_many_gallery_blocks_matches_brute_force(prepack: bool, ties: bool) -> None:
    # 600 gallery rows in blocks of 37 asked, 64 given (whole groups of 32 columns): 10 blocks, the last one
    # padded, 20 column groups; k = 3 with no extra candidates fetches 7 scores, so groups are really left out
    torch = pytest.importorskip("torch")
    from whale_retrieval.bf16_gallery import can_prepack
    from whale_retrieval.knn_bf16 import bf16_knn_search
    from whale_retrieval.rows import check_embeddings

    if prepack and not can_prepack(torch, torch.device("cpu")):
        pytest.skip("this torch build cannot pack bf16 blocks for oneDNN")
    rng = np.random.default_rng(12)
    if ties:
        query, gallery = exact_tie_vectors(rng, 40), exact_tie_vectors(rng, 600)
    else:
        query, gallery = rng.normal(size=(40, 48)).astype(np.float32), rng.normal(size=(600, 48)).astype(np.float32)
    config = KnnConfig(backend="torch_bf16", bf16_extra_candidates=0)
    args = (query, check_embeddings(query, "query"), gallery, check_embeddings(gallery, "gallery"), 3, 16, config)
    sims, idx = bf16_knn_search(*args, gallery_block=37, prepack=prepack)
    want_sims, want_idx = brute_force(query, gallery, 3)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(sims, want_sims, atol=1e-6)


def test_packed_gallery_blocks_score_as_the_plain_bf16_product() -> None:
    torch = pytest.importorskip("torch")
    from whale_retrieval.bf16_gallery import Bf16Gallery, can_prepack

    if not can_prepack(torch, torch.device("cpu")):
        pytest.skip("this torch build cannot pack bf16 blocks for oneDNN")
    rng = np.random.default_rng(13)
    gallery, query = rng.normal(size=(100, 64)).astype(np.float32), rng.normal(size=(9, 64)).astype(np.float32)
    norms = np.linalg.norm(gallery.astype(np.float64), axis=1)
    unit_bf16 = torch.from_numpy(gallery / norms[:, None].astype(np.float32)).bfloat16()
    queries = torch.from_numpy(query).bfloat16()
    for prepack in (False, True):
        store = Bf16Gallery(torch, gallery, norms, torch.device("cpu"), 30, len(query), prepack)
        # 30 rows asked, 32 given: blocks are whole groups of GROUP_COLUMNS rows, the last one padded
        assert store.width == 32
        assert [(first, stop) for first, stop, _ in store.blocks] == [(0, 32), (32, 64), (64, 96), (96, 100)]
        scores = torch.empty((len(store.blocks), len(query), store.width), dtype=torch.bfloat16)
        for j in range(len(store.blocks)):
            store.scores(queries, j, out=scores[j])
        scores = torch.cat(list(scores), 1).float()
        assert scores.shape == (9, 128) and bool((scores[:, 100:] == -torch.inf).all())
        want = (queries.float() @ unit_bf16.float().T).bfloat16().float()  # exact fp32 sums of bf16 products
        torch.testing.assert_close(scores[:, :100], want, atol=0, rtol=2**-8)  # one bf16 rounding apart at most


def test_gallery_blocks_are_equal_whole_groups_and_pad_less_than_a_group_each() -> None:
    from whale_retrieval.bf16_gallery import GROUP_COLUMNS, block_width

    assert block_width(51_033, 6_512) == 6_400  # 8 blocks of 6,528 would pad 1,191 zero rows
    assert block_width(12_000, 4_194) == 4_000
    rng = np.random.default_rng(16)
    for n_rows, asked in zip(rng.integers(1, 100_000, 300), rng.integers(1, 20_000, 300)):
        width = block_width(int(n_rows), int(asked))
        n_blocks = -(-n_rows // width)
        assert width % GROUP_COLUMNS == 0 and width <= -(-asked // GROUP_COLUMNS) * GROUP_COLUMNS
        assert n_blocks == -(-n_rows // (-(-min(asked, n_rows) // GROUP_COLUMNS) * GROUP_COLUMNS))  # as many blocks
        assert n_blocks * width - n_rows < GROUP_COLUMNS * n_blocks  # padding: under a group per block


def test_rescore_scores_do_not_depend_on_the_gather_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    # the gather buffer only sets how many query rows go per step; the oracle is the float64 cosine
    torch = pytest.importorskip("torch")
    from whale_retrieval import knn_bf16
    from whale_retrieval.bf16_gallery import Bf16Gallery

    rng = np.random.default_rng(3)
    gallery_emb, query = rng.normal(size=(300, 48)).astype(np.float32), rng.normal(size=(20, 48)).astype(np.float32)
    gallery_norms, query_norms = np.linalg.norm(gallery_emb, axis=1), np.linalg.norm(query, axis=1)
    gallery = Bf16Gallery(torch, gallery_emb, gallery_norms, torch.device("cpu"), 64, len(query))
    queries = knn_bf16._query_chunk(torch, query, query_norms, gallery)
    candidates = rng.integers(0, 300, (20, 7))
    unit_gallery = gallery_emb.astype(np.float64) / gallery_norms[:, None]
    want = np.einsum("id,icd->ic", query / query_norms[:, None], unit_gallery[candidates])
    for gather_bytes in (1, 4 * 7 * 48 * 3, 1 << 30):  # one row per step, three rows, all rows at once
        got = knn_bf16._rescore(torch, queries, torch.arange(20), gallery, candidates, gather_bytes=gather_bytes)
        np.testing.assert_allclose(got, want, atol=1e-6)
    monkeypatch.setattr(knn_bf16, "l3_bytes", lambda: 480 << 20)  # a VM's sysfs L3: the buffer stays cache-sized
    assert knn_bf16.default_gather_bytes() == knn_bf16.GATHER_BYTES_MAX
    monkeypatch.setattr(knn_bf16, "l3_bytes", lambda: 16 << 20)
    assert knn_bf16.default_gather_bytes() == 4 << 20


def test_the_bf16_pass_keeps_every_tensor_on_the_search_device() -> None:
    # `use_gpu` runs the pass on CUDA; on `meta` every op checks that its inputs share one device and only
    # copying a result out fails, so a tensor left on the CPU fails here with "same device" instead
    torch = pytest.importorskip("torch")
    from whale_retrieval.bf16_gallery import Bf16Gallery
    from whale_retrieval.knn_bf16 import _bf16_scores, _bf16_top, _query_chunk, _QueryChunk, _rescore

    meta = torch.device("meta")
    rng = np.random.default_rng(14)
    gallery_emb, query = rng.normal(size=(200, 32)).astype(np.float32), rng.normal(size=(8, 32)).astype(np.float32)
    gallery = Bf16Gallery(torch, gallery_emb, np.linalg.norm(gallery_emb, axis=1), meta, 64, len(query))
    assert not gallery.prepacked  # oneDNN packing is for the CPU only
    devices = {gallery.rows.device, gallery.inv_norms.device, *(w.device for *_, w in gallery.blocks)}
    assert devices == {meta}
    rows = torch.from_numpy(query).to(meta)
    inv_norms = torch.from_numpy(1 / np.linalg.norm(query, axis=1)).to(meta)
    with pytest.raises(NotImplementedError, match="meta"):  # only reading the residuals out fails
        _query_chunk(torch, query, np.linalg.norm(query, axis=1), gallery)
    queries_bf16 = gallery.query_buffer(8)
    assert queries_bf16.device == meta and gallery.unit_bf16(rows, inv_norms, queries_bf16).device == meta
    queries = _QueryChunk(rows, inv_norms, queries_bf16, np.zeros(8))
    scores, maxima = _bf16_scores(torch, queries.bf16, gallery)
    assert scores.device == maxima.device == meta
    with pytest.raises(NotImplementedError, match="meta"):
        _bf16_top(torch, scores, maxima, 5)
    with pytest.raises(NotImplementedError, match="meta"):
        _rescore(torch, queries, torch.arange(8, device=meta), gallery, rng.integers(0, 200, (8, 6)))


def test_rows_float32_cannot_hold_are_refused_by_row_and_huge_fp32_rows_are_not() -> None:
    rng = np.random.default_rng(15)
    gallery = rng.normal(size=(10, 8))
    for scale in (1e200, 1e-200):  # finite in float64, inf / 0 once cast to the searches' fp32
        query = rng.normal(size=(4, 8))
        query[[1, 3]] *= scale
        with pytest.raises(InputError, match=r"query embeddings: 2 row\(s\) have values float32 cannot.*rows 1, 3"):
            knn_search(query, gallery, 3)
    huge = (rng.normal(size=(4, 8)) * 1e20).astype(np.float32)  # fp32 values whose fp32 squares overflow
    np.testing.assert_array_equal(knn_search(huge, gallery, 3)[1], knn_search(huge / 1e20, gallery, 3)[1])


@pytest.mark.parametrize("backend", ["blas", "faiss", "torch_bf16"])
def test_every_searcher_answers_alike_at_the_scales_fp32_holds(backend: str) -> None:
    # rows near either end of fp32's range: their norms overflow or underflow fp32 squares, not the answers
    if backend == "torch_bf16":
        pytest.importorskip("torch")
    rng = np.random.default_rng(16)
    query, gallery = rng.normal(size=(30, 24)), rng.normal(size=(200, 24))
    want_sims, want_idx = knn_search(query, gallery, 7, config=KnnConfig(backend="blas"))
    for query_scale, gallery_scale in ((1e-30, 1.0), (1.0, 3e37), (3e37, 1e-30)):
        for dtype in (np.float32, np.float64):
            scaled = ((query * query_scale).astype(dtype), (gallery * gallery_scale).astype(dtype))
            sims, idx = knn_search(*scaled, 7, config=KnnConfig(backend=backend))
            np.testing.assert_array_equal(idx, want_idx)
            np.testing.assert_allclose(sims, want_sims, atol=1e-6)


def test_knn_search_rejects_labels_of_another_gallery() -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(InputError, match="3 gallery labels for 10 gallery rows"):
        knn_search(rng.normal(size=(2, 4)), rng.normal(size=(10, 4)), 3, gallery_labels=["a", "b", "c"])


def test_bf16_error_bound_covers_every_pair() -> None:
    import torch

    from whale_retrieval.knn_bf16 import bf16_error_bound, excluded_score_bound

    rng = np.random.default_rng(7)
    query = rng.normal(size=(64, 512)).astype(np.float32)
    gallery = rng.normal(size=(500, 512)).astype(np.float32)
    gallery[:50] = query[:50] + 0.01 * gallery[:50]  # high scores, where output rounding is largest
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    q, g = torch.from_numpy(query), torch.from_numpy(gallery)
    approx = (q.bfloat16() @ g.bfloat16().T).double().numpy()
    exact = query.astype(np.float64) @ gallery.astype(np.float64).T
    q_res = torch.linalg.vector_norm(q - q.bfloat16().float(), dim=1).double().numpy()
    g_res = float(torch.linalg.vector_norm(g - g.bfloat16().float(), dim=1).max())
    upper = excluded_score_bound(approx, bf16_error_bound(q_res, g_res, 512)[:, None])
    assert (exact <= upper).all()
    assert (upper - approx).max() < 0.01  # and it is not vacuous


def test_backend_choice() -> None:
    from whale_retrieval.searcher import resolve_backend

    assert resolve_backend(KnnConfig(), 100, 1000, 64) == "blas"  # small: torch start-up would not pay
    assert resolve_backend(KnnConfig(), 10**5, 10**5, 4608) == "blas"  # CPU top-k: the re-score outweighs bf16
    assert resolve_backend(KnnConfig(), 100, 1000, 64, label_aware=True) == "blas"
    assert resolve_backend(KnnConfig(index="ivf", backend="torch_bf16"), 10**5, 10**5, 4608) == "faiss"
    assert resolve_backend(BF16, 1, 1, 1) == "torch_bf16"
    assert resolve_backend(KnnConfig(backend="faiss"), 10**5, 10**5, 4608) == "faiss"
    assert resolve_backend(KnnConfig(backend="blas"), 10**5, 10**5, 4608, label_aware=True) == "blas"


def test_retrieval_works_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from whale_retrieval import KnnConfig, knn_search\n"
        "rng = np.random.default_rng(0)\n"
        "config = KnnConfig(backend='torch_bf16')\n"
        "_, idx = knn_search(rng.normal(size=(5, 8)), rng.normal(size=(50, 8)), 3, config=config)\n"
        "assert idx.shape == (5, 3) and 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "torch is not importable; searching with the fp32 BLAS pass" in done.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["packed int64 keys", "lexsort"])
def test_sort_ties_by_index_orders_by_score_then_index(dtype) -> None:
    # oracle: Python's sort of (-score, index) pairs, a missing hit (-1, -inf) last
    from whale_retrieval.rows import sort_ties_by_index

    rng = np.random.default_rng(5)
    sims = rng.choice(np.array([-0.75, -0.0, 0.0, 0.25, 0.5, 1.0, 3e-39, -3e-39]), size=(50, 12)).astype(dtype)
    idx = np.stack([rng.permutation(40)[:12] for _ in range(50)])
    idx[1::2] += 2**32 - 43  # indices near the packed key's limit (2³² − 2)
    sims[::7, 3], idx[::7, 3] = -np.inf, -1
    got_sims, got_idx = sort_ties_by_index(sims, idx)
    for row in range(50):
        pairs = sorted(zip(sims[row], idx[row]), key=lambda p: (-p[0], p[1] if p[1] >= 0 else np.inf))
        assert got_idx[row].tolist() == [i for _, i in pairs]
        assert got_sims[row].tolist() == [s for s, _ in pairs]  # -0.0 == 0.0
        assert got_sims.dtype == dtype and got_idx.dtype == np.int64
