from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_xcompliance.concurrency import in_order


def test_results_come_in_input_order_even_when_later_calls_finish_first() -> None:
    def call(i: int) -> int:
        time.sleep(0.02 if i == 0 else 0)
        return i * i

    with ThreadPoolExecutor(4) as pool:
        got = list(in_order(pool, ((i, lambda i=i: call(i)) for i in range(8)), ahead=3))
    assert got == [(i, i * i) for i in range(8)]


def test_at_most_ahead_plus_one_calls_are_in_flight() -> None:
    lock = threading.Lock()
    running = peak = 0

    def call() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.005)
        with lock:
            running -= 1

    submitted = 0

    def calls():  # type: ignore[no-untyped-def]
        nonlocal submitted
        for i in range(20):
            submitted += 1
            yield i, call

    with ThreadPoolExecutor(8) as pool:
        for i, _ in in_order(pool, calls(), ahead=2):
            assert submitted <= i + 3  # the awaited call and two queued beyond it
    assert peak <= 3


def test_a_failing_call_raises_in_its_turn_and_cancels_the_queued_ones() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def call(i: int) -> int:
        if i == 1:
            raise ValueError("bad block")
        if i > 1:
            gate.wait(5)  # calls after the failing one are still queued or running when it is raised
        ran.append(i)
        return i

    with ThreadPoolExecutor(1) as pool:
        results = in_order(pool, ((i, lambda i=i: call(i)) for i in range(6)), ahead=2)
        assert next(results) == (0, 0)
        with pytest.raises(ValueError, match="bad block"):
            next(results)
        gate.set()
    assert ran[0] == 0
    assert not {3, 4, 5} & set(ran)  # 3 was queued and cancelled; 4 and 5 were never submitted
