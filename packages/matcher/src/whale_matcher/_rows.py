"""Arrays joined along their first axis without copying: what `Features.concat` holds for memory-mapped parts.

A gallery version's features are the trained gallery's (a memory-mapped file of every train photo) followed
by the few enrolled photos'; `np.concatenate` would read the whole file into memory to join them. A
`RowChain` keeps the parts and reads, for each request, only the rows asked for, from the part they live in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class RowChain:
    """Read-only rows of several arrays (same dtype and trailing shape), as if concatenated along axis 0.

    Indexing by an int, a slice or an integer / boolean row array returns an ndarray of those rows, read from
    the parts; anything else (a tuple key, `np.asarray`) joins the parts whole first.

    Raises:
        ValueError: on construction, parts whose dtypes or trailing shapes differ, or no parts.
    """

    def __init__(self, parts: Sequence[np.ndarray | RowChain]) -> None:
        flat = [p for part in parts for p in (part.parts if isinstance(part, RowChain) else [part])]
        if not flat:
            raise ValueError("RowChain: no parts")
        if any(p.dtype != flat[0].dtype or p.shape[1:] != flat[0].shape[1:] for p in flat):
            raise ValueError(f"RowChain: parts differ: {[(str(p.dtype), p.shape) for p in flat]}")
        self.parts = flat
        self.starts = np.cumsum([0, *(len(p) for p in flat)])

    @property
    def dtype(self) -> np.dtype:
        return self.parts[0].dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.starts[-1]), *self.parts[0].shape[1:])

    @property
    def ndim(self) -> int:
        return self.parts[0].ndim

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        joined = np.concatenate([np.asarray(p) for p in self.parts])
        return joined if dtype is None else joined.astype(dtype, copy=False)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        if isinstance(key, slice):
            return self[np.arange(*key.indices(len(self)))]
        if isinstance(key, tuple):
            return np.asarray(self)[key]
        rows = np.asarray(key)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64).reshape(-1)
        if len(rows) and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"rows beyond the {len(self)} of a RowChain")
        rows = np.where(rows < 0, rows + len(self), rows)
        part = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        for p in np.unique(part):
            where = part == p
            out[where] = self.parts[p][rows[where] - self.starts[p]]
        return out
