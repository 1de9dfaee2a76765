"""Block sizes of the exact search: row blocks that stay in cache, and query chunks."""

from __future__ import annotations

from collections.abc import Iterator

_NORM_CHUNK_BYTES = 4 << 20  # float64 blocks that stay in cache: ~6× faster norms than 8k-row blocks at 4608-d


def norm_chunk_rows(dim: int) -> int:
    """Rows per block when norming / normalising / float64-scoring [n, dim] embeddings block by block."""
    return max(1, _NORM_CHUNK_BYTES // (8 * dim))


def chunks(n_rows: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive chunks of at most `chunk_size` rows covering `n_rows`."""
    for start in range(0, n_rows, chunk_size):
        yield start, min(n_rows, start + chunk_size)
