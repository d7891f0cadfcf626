"""Ordered work in a thread pool: the one pattern the data paths share (results, ID preparation, emulator).

numpy and pyarrow release the GIL in their kernels, so blocks of a stream parse in parallel threads while
the caller consumes results in input order, with a bounded number in flight (bounded memory).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

K = TypeVar("K")
T = TypeVar("T")

__all__ = ["in_order"]


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
