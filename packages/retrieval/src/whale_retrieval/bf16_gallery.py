"""The gallery side of the bf16 candidate pass: unit rows in bf16 blocks, packed once for oneDNN on the CPU.

Why packed: torch's `queries @ block.T` re-lays the gallery block into oneDNN's blocked format on every call.
The gallery is fixed for the whole search, so each block is laid out once
(`torch.ops.mkldnn._reorder_linear_weight`, the prepacking torch's own inductor uses for frozen bf16 linear
layers) and every query chunk is multiplied with `torch.ops.mkldnn._linear_pointwise`. On 2 Zen 5 cores at
1,932 × 6,144 × 4608, probes ran it at 810–880 GFLOP/s against 740–840 unpacked, and other runs measured the
two equal (`benchmarks/bf16_blocks.py`): never slower, and the packing costs ~0.2 s once at Kaggle size. The
products are the same fp32-accumulated, bf16-rounded dot products, so the error bound is unchanged. Where the
ops are missing (another torch build, a CUDA device) the blocks stay plain bf16 rows.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from whale_retrieval._blocks import chunks, norm_chunk_rows

_PREPARE_ROWS = 256  # gallery rows per step of the bf16 copy: cache-sized (0.4 s at 51k × 4608 vs 0.9 s for 2048)
#: bf16 scores per matmul. At 4608-d on 2 cores, [1932 queries × 6144 rows] ran at ~790 GFLOP/s with the gallery
#: block used as stored (rows × dim, transposed in the matmul) but [1932 × 13,025] at ~610 (benchmarks/README.md).
_SCORE_BLOCK_BYTES = 24 << 20
#: Gallery columns per group of the candidate selection (`whale_retrieval.knn_bf16`): the maximum over a
#: strided group of 32 columns ran at ~0.15 ns per score here, torch.topk at ~1 ns.
GROUP_COLUMNS = 32


@functools.cache
def l3_bytes() -> int:
    """This machine's last-level cache size (Linux sysfs; 32 MiB where the OS does not say)."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()  # e.g. "32768K"
        return int(text[:-1]) << {"K": 10, "M": 20}[text[-1]]
    except (OSError, ValueError, KeyError, IndexError):
        return 32 << 20


def gallery_block_rows(dim: int, query_rows: int) -> int:
    """Gallery rows per bf16 matmul: the [query rows × gallery rows] bf16 score block stays near
    `_SCORE_BLOCK_BYTES` (where the measured bf16 rate holds; a 197 MB block per query chunk lost it),
    and the gallery block itself within a few L3-sized slices of `dim`-wide rows."""
    by_scores = _SCORE_BLOCK_BYTES // (2 * max(1, query_rows))
    by_rows = 4 * l3_bytes() // (2 * dim)
    return max(1024, min(by_scores, by_rows))


def _ceil_div(n: int, d: int) -> int:
    return -(-n // d)


def block_width(n_rows: int, block_rows: int) -> int:
    """Rows per block, a multiple of `GROUP_COLUMNS`: as many blocks as `block_rows` asks for, sized alike.

    Filling blocks of `block_rows` and padding the last wasted up to a block of zero rows (2.3 % of the
    products at 51,033 rows in blocks of 6,528, 5.6 % at 12,000 in blocks of 4,224); equal blocks pad
    fewer than `GROUP_COLUMNS` rows per block.
    """
    n_blocks = _ceil_div(n_rows, _ceil_div(min(block_rows, n_rows), GROUP_COLUMNS) * GROUP_COLUMNS)
    return _ceil_div(_ceil_div(n_rows, n_blocks), GROUP_COLUMNS) * GROUP_COLUMNS


def can_prepack(torch, device) -> bool:
    """Whether this torch build can pack bf16 gallery blocks for oneDNN on `device` (CPU only)."""
    mkldnn = torch.ops.mkldnn
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and hasattr(mkldnn, "_reorder_linear_weight")
        and hasattr(mkldnn, "_linear_pointwise")
    )


class Bf16Gallery:
    """The unit gallery as bf16 blocks (for the candidate pass), and the caller's rows with their inverse norms
    (for the fp32 re-score: no normalised fp32 copy, which would add 4 bytes per value).

    Every block has the same width (`block_rows` or a little less, so that the blocks are equal, rounded up to a
    multiple of `GROUP_COLUMNS`); the last one is padded with zero rows, whose scores `scores` sets to -inf.

    Attributes:
        blocks: (first row, stop row, weight) per block; `weight` is the packed block when `prepacked`, else
            its [width × dim] bf16 unit rows.
        width: rows per block, padding included.
    """

    def __init__(self, torch, gallery_emb: np.ndarray, norms: np.ndarray, device, block_rows: int,
                 query_rows: int, prepack: bool | None = None) -> None:  # fmt: skip
        self.shape = gallery_emb.shape
        self.rows = torch.from_numpy(np.ascontiguousarray(gallery_emb, dtype=np.float32)).to(device)
        self.inv_norms = torch.from_numpy(1.0 / norms).to(device)
        self.prepacked = can_prepack(torch, device) if prepack is None else prepack
        self._torch = torch
        self._scratch = torch.empty((max(norm_chunk_rows(self.shape[1]), _PREPARE_ROWS), self.shape[1]), device=device)
        self.blocks = []
        residual = torch.zeros((), dtype=torch.float32, device=device)
        inv_norms = self.inv_norms.float()  # fp32 unit rows: norms 1 ± 3·2⁻²⁴, inside the bound's slack
        self.width = block_width(self.shape[0], block_rows)
        staging = torch.empty((self.width, self.shape[1]), dtype=torch.bfloat16, device=device)
        for first, stop in chunks(self.shape[0], self.width):
            # packing copies the block, so one staging block serves them all (half the fresh memory to fault in)
            block = staging if self.prepacked else torch.empty_like(staging)
            block[stop - first :] = 0  # the padding rows only: zeroing whole blocks cost 0.1 s at Kaggle size
            block_residual = self.unit_bf16(self.rows[first:stop], inv_norms[first:stop], block)
            residual = torch.maximum(residual, block_residual.max())
            if self.prepacked:
                block = torch.ops.mkldnn._reorder_linear_weight(block, query_rows)
            self.blocks.append((first, stop, block))
        self._residual = residual
        self._workspace = self._query_buffer = None

    def unit_bf16(self, rows, inv_norms, out):
        """Write bf16(`rows` × `inv_norms`), the unit rows in bf16, into `out`; return ‖unit − bf16(unit)‖ per row.

        The fp32 unit rows only pass through one reused cache-sized buffer: no fp32 copy of the whole matrix and
        no fresh buffer per step (page faults on fresh memory measured up to 10× the arithmetic).

        Args:
            rows: [n, dim] fp32 rows on the search device.
            inv_norms: [n] fp32 inverse norms of `rows`.
            out: [≥ n, dim] bf16 destination.
        """
        torch = self._torch
        residual = torch.empty(len(rows), dtype=torch.float32, device=rows.device)
        for start, end in chunks(len(rows), len(self._scratch)):
            unit = self._scratch[: end - start]
            torch.mul(rows[start:end], inv_norms[start:end, None], out=unit)
            out[start:end] = unit
            unit -= out[start:end]
            torch.linalg.vector_norm(unit, dim=1, out=residual[start:end])
        return residual

    @functools.cached_property
    def residual(self) -> float:
        """The largest ‖g − bf16(g)‖ over the unit rows (read once: a device sync, and no data on `meta`)."""
        return float(self._residual)

    def workspace(self, n_rows: int):
        """Reused bf16 buffers for `n_rows` queries: scores [blocks × rows × width] (each block's scores one
        contiguous matrix, so a matmul can write them in place) and group maxima [rows × width / `GROUP_COLUMNS`
        per block]. Reusing them saves page-faulting ~200 MB per query chunk."""
        torch = self._torch
        if self._workspace is None or self._workspace[0].shape[1] < n_rows:
            n_blocks, device = len(self.blocks), self.rows.device
            self._workspace = (
                torch.empty((n_blocks, n_rows, self.width), dtype=torch.bfloat16, device=device),
                torch.empty((n_rows, n_blocks * self.width // GROUP_COLUMNS), dtype=torch.bfloat16, device=device),
            )
        scores, maxima = self._workspace
        return scores[:, :n_rows], maxima[:n_rows]

    def query_buffer(self, n_rows: int):
        """A reused bf16 [n_rows × dim] buffer for a chunk's unit query rows, on the gallery's device."""
        if self._query_buffer is None or len(self._query_buffer) < n_rows:
            self._query_buffer = self._torch.empty(
                (n_rows, self.shape[1]), dtype=self._torch.bfloat16, device=self.rows.device
            )
        return self._query_buffer[:n_rows]

    def scores(self, queries_bf16, block: int, out) -> None:
        """Write the bf16 [queries × width] scores of unit bf16 queries against block number `block` into `out`
        (contiguous; padding rows score -inf).

        Unpacked blocks are multiplied straight into `out`; packed ones through oneDNN's packed kernel, which
        has no output argument, and a copy.
        """
        first, _, weight = self.blocks[block]
        if self.prepacked:
            out.copy_(self._torch.ops.mkldnn._linear_pointwise(queries_bf16, weight, None, "none", [], ""))
        else:
            self._torch.matmul(queries_bf16, weight.T, out=out)
        if first + self.width > self.shape[0]:
            out[:, self.shape[0] - first :] = -float("inf")
