"""Typed, frozen configs of the retrieval package (one params.yaml section each)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from whale_core import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class KnnConfig(Config):
    """How nearest neighbours are searched.

    Attributes:
        index: "flat" = exact inner product (default); "ivf" / "hnsw" = approximate FAISS indexes for
            galleries of millions (check them with `knn_recall_at_k`).
        memory_budget_mb: bounds the per-chunk working memory when `chunk_size` is not given.
        ivf_nlist: IVF cells (trained on the gallery); `ivf_nprobe`: cells visited per query.
        hnsw_m: HNSW graph degree; `hnsw_ef_search`: HNSW search breadth.
        use_gpu: move the index to a GPU when faiss was built with GPU support (falls back to CPU
            with a warning otherwise).
        seed: seed of IVF training.
        backend: how the exact ("flat") search runs (one `whale_retrieval.searcher.Searcher` each). "blas" =
            an fp32 BLAS matmul per query block + partial sort, no index (the CPU default); "faiss" = FAISS
            `IndexFlatIP` in fp32 (FAISS-GPU with `use_gpu`); "torch_bf16" =
            a bf16 candidate pass with torch (an optional accelerator, ~4× the fp32 matmul rate on CPUs with
            bf16 kernels) whose candidates are re-scored in fp32 and proven complete by an error-bound margin
            test, falling back to exact rows where the margin is too thin — the same answers as "faiss";
            "auto" = blas on CPUs, except bf16 for large searches where it was measured to pay — searches
            that rank individuals (`knn_search(gallery_labels=...)`, as prediction does) on devices with
            native bf16 kernels; with `use_gpu`, FAISS-GPU, else bf16 on a CUDA GPU
            (`whale_retrieval.searcher.resolve_backend`; numbers in benchmarks/README.md).
        bf16_extra_candidates: a plain top-k bf16 search re-scores 2k + this many candidates per query in
            fp32 (a second round re-scores four times as many for the queries whose margin test failed);
            searches that rank individuals start from fewer (6 per individual).
    """

    SECTION = "knn"
    RANGES = {
        "memory_budget_mb": ">= 1",
        "ivf_nlist": ">= 1",
        "ivf_nprobe": ">= 1",
        "hnsw_m": ">= 2",
        "hnsw_ef_search": ">= 1",
        "bf16_extra_candidates": ">= 0",
    }

    index: Literal["flat", "ivf", "hnsw"] = "flat"
    memory_budget_mb: int = 256
    ivf_nlist: int = 1024
    ivf_nprobe: int = 32
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    use_gpu: bool = False
    seed: int = 0
    backend: Literal["auto", "blas", "faiss", "torch_bf16"] = "auto"
    bf16_extra_candidates: int = 64


@dataclasses.dataclass(frozen=True)
class TuneConfig(Config):
    """The post-processing search of `tune_on_neighbours`.

    Attributes:
        n_trials: total Optuna trials wanted in the study (a resumed study only runs the missing ones).
        seed: TPE sampler seed.
        threshold_min, threshold_max, threshold_step: range and step of the global threshold (cosine
            similarity), shared by the grid baseline and Optuna.
        k_neighbors_min, k_neighbors_max: range of neighbours per query (tuned when min < max).
        per_species: tune one threshold offset per species (needs species arrays).
        species_offset_max: offsets are searched in [-max, +max] on `threshold_step`.
        blend_weight_min, blend_weight_max: classifier blend weight range [min, max] (tuned only when logits are
            given); a min above 0 keeps the blend on whatever OOF prefers (the tests' profile exercises it so).
    """

    SECTION = "tune.search"  # where params.yaml holds it (the tune stage's `search`)
    RANGES = {
        "n_trials": ">= 1",
        "threshold_min": "[-1, 1]",  # cosine similarity, or P(same individual) in [0, 1] when verified
        "threshold_max": "[-1, 1]",
        "threshold_step": "(0, 1]",
        "k_neighbors_min": ">= 1",
        "k_neighbors_max": ">= 1",
        "species_offset_max": "[0, 1]",
        "blend_weight_min": "[0, 1]",
        "blend_weight_max": "[0, 1]",
    }

    n_trials: int = 60
    seed: int = 42
    threshold_min: float = 0.0
    threshold_max: float = 1.0
    threshold_step: float = 0.02
    k_neighbors_min: int = 50
    k_neighbors_max: int = 50
    per_species: bool = False
    species_offset_max: float = 0.2
    blend_weight_min: float = 0.0
    blend_weight_max: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        where = self.SECTION
        if self.blend_weight_min > self.blend_weight_max:
            raise ConfigError(
                f"{where}: blend_weight_min {self.blend_weight_min} > blend_weight_max {self.blend_weight_max}"
            )
        if self.threshold_min > self.threshold_max:
            raise ConfigError(f"{where}: threshold_min {self.threshold_min} > threshold_max {self.threshold_max}")
        if self.k_neighbors_min > self.k_neighbors_max:
            raise ConfigError(
                f"{where}: need k_neighbors_min ({self.k_neighbors_min}) <= k_neighbors_max ({self.k_neighbors_max})"
            )
