"""Ordered map of a function over tasks in worker processes, with large read-only inputs shared once.

On Linux the pool forks, so the shared inputs (features of a whole gallery) reach the workers by
copy-on-write memory instead of being pickled; elsewhere they are pickled once per worker. Each worker
runs single-threaded BLAS, OpenCV and torch: `workers` processes use `workers` cores, no oversubscription.

Forking a process whose OpenCV thread pool is alive can copy a locked pool mutex into the child, which
then hangs in its first parallel OpenCV call (seen here about one run in two). So OpenCV is set to one
thread — which joins its pool threads — while the pool forks, and restored after.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import cv2

_SHARED: Any = None


def shared() -> Any:
    """The object passed as `shared` to the running `imap_ordered` (inside a task function)."""
    return _SHARED


def _init_worker(obj: Any) -> None:
    global _SHARED
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    cv2.setNumThreads(1)
    if "torch" in sys.modules:  # the bf16 matcher's matmul, imported before the fork
        sys.modules["torch"].set_num_threads(1)
    _SHARED = obj


def imap_ordered(fn: Callable[[Any], Any], tasks: Iterable[Any], shared_obj: Any, workers: int) -> Iterator[Any]:
    """Yield `fn(task)` for every task, in task order.

    Args:
        fn: a module-level function (picklable by reference); it reads `shared()` for the shared inputs.
        tasks: small picklable task descriptions.
        shared_obj: read-only inputs every task needs.
        workers: 1 = run in this process; more = a process pool of that size.
    """
    global _SHARED
    if workers <= 1:
        previous, _SHARED = _SHARED, shared_obj
        try:
            yield from map(fn, tasks)
        finally:
            _SHARED = previous
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # no OpenCV pool thread may hold a lock while the workers fork
    try:
        pool = multiprocessing.get_context(method).Pool(workers, initializer=_init_worker, initargs=(shared_obj,))
    finally:
        cv2.setNumThreads(threads)
    with pool:
        yield from pool.imap(fn, tasks)
