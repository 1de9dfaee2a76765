"""Ensembles by concatenation: each model's embedding L2-normalised, weighted, concatenated, re-normalised."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from whale_core import InputError
from whale_retrieval._blocks import chunks
from whale_retrieval.rows import check_embeddings

_CHUNK_ROWS = 8192


def concat_embeddings(
    parts: Sequence[tuple[Sequence[str], np.ndarray]], weights: Sequence[float] | None = None
) -> tuple[list[str], np.ndarray]:
    """Concatenate several models' embeddings of the same images.

    Args:
        parts: (image ids, [n, d_i] embeddings) per model; every part must list the same ids in the
            same order.
        weights: one non-negative weight per part (default all 1); a part's share of the final cosine
            similarity grows with its weight squared.

    Returns:
        (image ids, float32 [n, sum d_i] unit-norm rows).

    Raises:
        InputError: no parts, ids/rows count mismatch, ids differing from the first part's (naming the
            part and first position), bad weights, or NaN/zero rows.
    """
    if not parts:
        raise InputError("concat_embeddings: no embeddings given")
    weights = [1.0] * len(parts) if weights is None else [float(w) for w in weights]
    if len(weights) != len(parts) or any(not np.isfinite(w) or w < 0 for w in weights):
        raise InputError(f"concat_embeddings: need {len(parts)} finite non-negative weights, got {weights}")
    reference_ids = [str(i) for i in parts[0][0]]
    widths = [int(np.shape(emb)[1]) for _, emb in parts]
    joined = np.empty((len(reference_ids), sum(widths)), dtype=np.float32)  # the one full-size allocation
    offsets = np.concatenate([[0], np.cumsum(widths)])
    for number, ((ids, emb), weight) in enumerate(zip(parts, weights)):
        ids = [str(i) for i in ids]
        if len(ids) != len(emb):
            raise InputError(f"concat_embeddings: part {number} has {len(ids)} ids but {len(emb)} rows")
        if ids != reference_ids:
            position = next((p for p, (a, b) in enumerate(zip(ids, reference_ids)) if a != b), None)
            if position is None:
                raise InputError(
                    f"concat_embeddings: part {number} has {len(ids)} images, part 0 has {len(reference_ids)}"
                )
            raise InputError(
                f"concat_embeddings: part {number} lists {ids[position]!r} at position {position} "
                f"where part 0 lists {reference_ids[position]!r}"
            )
        scale = (weight / check_embeddings(emb, f"part {number}")).astype(np.float32)
        for start, stop in chunks(len(emb), _CHUNK_ROWS):  # in row chunks: no full-size temporaries
            joined[start:stop, offsets[number] : offsets[number + 1]] = emb[start:stop] * scale[start:stop, None]
    norms = check_embeddings(joined, "concatenated")
    for start, stop in chunks(len(joined), _CHUNK_ROWS):
        joined[start:stop] /= norms[start:stop, None].astype(np.float32)
    return reference_ids, joined
