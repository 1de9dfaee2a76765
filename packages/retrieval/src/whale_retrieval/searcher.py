"""One interface for every search backend: the `Searcher` protocol and the choice `KnnConfig` makes.

A searcher is built over one gallery (raw rows and their norms) and answers `search(query, norms, k,
labels)` with (similarities float32 [n, k] descending, gallery indices int64 [n, k]). Backends:

- "blas" (`whale_retrieval.search_blas`): exact, an fp32 BLAS matmul over query blocks and a partial
  sort; no index, no normalised gallery copy. The default exact CPU search.
- "faiss" (`whale_retrieval.search_faiss`): FAISS `IndexFlatIP` (exact), `IndexIVFFlat` / `IndexHNSWFlat`
  (approximate, `KnnConfig.index`), on a GPU with FAISS-GPU (`use_gpu`).
- "torch_bf16" (`whale_retrieval.knn_bf16`): exact, a bf16 candidate pass re-scored in fp32 and proven
  complete; torch on the CPU (native bf16 kernels) or a CUDA GPU.

Every exact backend returns the same answers: ties to the lowest gallery index, near-ties in float64
order (`whale_retrieval.near_ties`, applied by `knn_search`).
"""

from __future__ import annotations

import logging
from typing import Protocol

import faiss
import numpy as np

from whale_retrieval.config import KnnConfig

log = logging.getLogger(__name__)

#: `backend="auto"` uses the bf16 pass from this many multiply-adds (query rows × gallery rows × dim) on.
AUTO_BF16_MIN_MACS = 2 * 10**10


class Searcher(Protocol):
    """Cosine top-k over the gallery a searcher was built on (inputs validated, k ≤ gallery size)."""

    def search(
        self, query_emb: np.ndarray, query_norms: np.ndarray, k: int, labels: tuple[np.ndarray, int] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(sims float32 [n, k], idx int64 [n, k]); `labels` = (gallery label codes, n individuals) lets a
        searcher stop being exact past the neighbour that brings the n-th distinct individual."""
        ...


def resolve_backend(config: KnnConfig, n_query: int, n_gallery: int, dim: int, *, label_aware: bool = False) -> str:
    """The backend a search of this size runs on: "blas", "faiss" or "torch_bf16" (see `KnnConfig.backend`).

    `auto`, for searches of at least `AUTO_BF16_MIN_MACS` multiply-adds: the bf16 pass for label-aware
    searches on a device with native bf16 kernels (a few dozen re-scored candidates settle each query);
    with `use_gpu`, FAISS-GPU if faiss has it, else the bf16 pass on a CUDA GPU. Everything else on a CPU
    is the BLAS pass (a plain bf16 top-k would re-score ~2k candidates per query, memory-bound: slower
    than the fp32 matmul there). Approximate indexes are always FAISS.
    """
    if config.index != "flat" or config.backend == "faiss":
        return "faiss"
    if config.backend == "blas":
        return "blas"
    from whale_retrieval.knn_bf16 import torch_bf16_status

    available, native = torch_bf16_status(config.use_gpu)
    if config.backend == "torch_bf16":
        if not available:
            log.warning("knn.backend torch_bf16: torch is not importable; searching with the fp32 BLAS pass")
            return "blas"
        if not native:
            log.warning("knn.backend torch_bf16: no native bf16 kernels here; the search is exact but slow")
        return "torch_bf16"
    big = n_query * n_gallery * dim >= AUTO_BF16_MIN_MACS
    if label_aware and native and big:
        return "torch_bf16"
    if config.use_gpu:
        if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
            return "faiss"
        if big and available and _cuda():
            return "torch_bf16"
        log.warning("knn.use_gpu is set but faiss has no GPU here; searching on the CPU")
    return "blas"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def make_searcher(
    backend: str, gallery_emb: np.ndarray, gallery_norms: np.ndarray, config: KnnConfig, chunk_size: int | None
) -> Searcher:
    """The searcher of `backend` ("blas", "faiss", "torch_bf16") over a validated gallery."""
    if backend == "torch_bf16":
        from whale_retrieval.knn_bf16 import Bf16Searcher

        return Bf16Searcher(gallery_emb, gallery_norms, config, chunk_size)
    if backend == "faiss":
        from whale_retrieval.search_faiss import FaissSearcher

        return FaissSearcher(gallery_emb, gallery_norms, config, chunk_size)
    from whale_retrieval.search_blas import BlasSearcher

    return BlasSearcher(gallery_emb, gallery_norms, config, chunk_size)
