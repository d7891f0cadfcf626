"""Ordered work in a thread pool: the one pattern the data paths share (results, ID preparation, emulator).

numpy and pyarrow release the GIL in their kernels, so blocks of a stream parse in parallel threads while
the caller consumes results in input order, with a bounded number in flight (bounded memory).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

import pyarrow as pa

K = TypeVar("K")
T = TypeVar("T")

__all__ = ["WORKERS", "WORKER_MEMORY_POOL", "in_order"]

WORKERS = min(os.cpu_count() or 1, 4)
"""Worker threads for CPU-bound blocks: one a core; at most 4, because the consuming thread (reading,
counting, writing in order) cannot feed more, and every block in flight holds memory."""

WORKER_MEMORY_POOL = pa.system_memory_pool()
"""Where the worker threads' Arrow kernels allocate: malloc, not pyarrow's default mimalloc, whose
per-thread pages (freed by another thread) cost kernel time and memory (bench/README.md)."""


def in_order(pool: Executor, calls: Iterable[tuple[K, Callable[[], T]]], ahead: int) -> Iterator[tuple[K, T]]:
    """Run ``calls`` in ``pool``, at most ``ahead`` queued beyond the one awaited; yield results in order.

    A call's exception is raised when its turn comes; calls still queued then are cancelled.
    """
    pending: deque[tuple[K, Future[T]]] = deque()
    try:
        for key, call in calls:
            pending.append((key, pool.submit(call)))
            if len(pending) > ahead:
                key, future = pending.popleft()
                yield key, future.result()
        while pending:
            key, future = pending.popleft()
            yield key, future.result()
    finally:
        for _, future in pending:
            future.cancel()
