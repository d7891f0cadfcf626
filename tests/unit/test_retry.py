"""Specification of the retry policy and budget, the per-endpoint rate-limit tracker, one call's retries."""

from __future__ import annotations

import random

import pytest

from airflow_provider_xcompliance.exceptions import NotFoundError, RateLimitedError, ServerError
from airflow_provider_xcompliance.retry import (
    GET_JOB,
    LIST_JOBS,
    CallRetry,
    RateLimit,
    RateLimitTracker,
    RetryBudget,
    RetryPolicy,
    rate_limit_from_headers,
)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        "x-rate-limit-limit": str(limit),
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": str(reset),
    }


def test_backoff_stays_below_the_exponential_ceiling() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=60.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        samples = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling / 2  # jitter spreads over the whole range, not a fixed value


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=5.0)
    assert all(policy.backoff(30, random.Random(i)) <= 5.0 for i in range(50))


def test_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_budget_gives_up_after_max_attempts() -> None:
    budget = RetryBudget(RetryPolicy(max_attempts=3, backoff_base=0.01), FakeClock())
    assert budget.next_delay() is not None
    assert budget.next_delay() is not None
    assert budget.next_delay() is None


def test_budget_gives_up_when_the_next_wait_would_pass_max_elapsed() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryPolicy(max_attempts=100, max_elapsed=10.0, backoff_base=1.0), clock)
    assert budget.next_delay() is not None
    clock.now += 10.0
    assert budget.next_delay() is None


def test_budget_restarts_when_a_transfer_progresses() -> None:
    budget = RetryBudget(RetryPolicy(max_attempts=2, backoff_base=0.01), FakeClock())
    assert budget.next_delay() is not None
    budget.progressed()
    assert budget.next_delay() is not None


def test_budget_waits_for_a_known_rate_limit_reset() -> None:
    budget = RetryBudget(RetryPolicy(max_rate_limit_wait=900.0), FakeClock())
    delay = budget.next_delay(rate_limit_reset_at=5060.0, now=5000.0)
    assert delay is not None
    assert 60.0 <= delay <= 62.0


def test_budget_refuses_a_rate_limit_wait_beyond_its_bound() -> None:
    budget = RetryBudget(RetryPolicy(max_rate_limit_wait=30.0), FakeClock())
    assert budget.next_delay(rate_limit_reset_at=5060.0, now=5000.0) is None


def test_headers_parse_into_a_rate_limit() -> None:
    assert rate_limit_from_headers(headers(150, 7, 1700000000)) == RateLimit(150, 7, 1700000000.0)


def test_missing_or_malformed_headers_give_no_rate_limit() -> None:
    assert rate_limit_from_headers({"x-rate-limit-limit": "150"}) is None
    assert rate_limit_from_headers({**headers(1, 1, 1), "x-rate-limit-remaining": "many"}) is None


def test_tracker_keeps_limits_per_endpoint() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 3, 2000))
    assert tracker.get(GET_JOB) == RateLimit(150, 3, 2000.0)
    assert tracker.get(LIST_JOBS) is None


def test_tracker_ignores_answers_without_rate_headers() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 3, 2000))
    tracker.update(GET_JOB, {})
    assert tracker.get(GET_JOB) == RateLimit(150, 3, 2000.0)


def test_no_delay_while_budget_remains() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 1, 2000))
    assert tracker.delay_before_call(GET_JOB, now=1000.0) == 0.0


def test_spent_budget_delays_until_the_reset() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 0, 2000))
    assert 1000.0 <= tracker.delay_before_call(GET_JOB, now=1000.0) <= 1002.0


def test_spent_budget_no_longer_delays_after_the_reset() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 0, 2000))
    assert tracker.delay_before_call(GET_JOB, now=2001.0) == 0.0


def test_paced_interval_is_the_base_interval_with_plenty_of_budget() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 140, 1900))
    assert tracker.paced_interval(GET_JOB, 30.0, now=1000.0) == 30.0


def test_paced_interval_spreads_the_remaining_calls_until_the_reset() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 3, 1900))
    assert tracker.paced_interval(GET_JOB, 30.0, now=1000.0) == pytest.approx(300.0)


def test_paced_interval_waits_out_a_spent_window() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 0, 1900))
    assert tracker.paced_interval(GET_JOB, 30.0, now=1000.0) >= 900.0


def test_paced_interval_without_information_is_the_base_interval() -> None:
    assert RateLimitTracker().paced_interval(GET_JOB, 30.0, now=1000.0) == 30.0


# --- CallRetry: the decisions both of the hook's request loops share ----------------------------------


def call_retry(tracker: RateLimitTracker, max_rate_limit_wait: float = 900.0) -> CallRetry:
    policy = RetryPolicy(max_attempts=3, max_rate_limit_wait=max_rate_limit_wait)
    return CallRetry(
        "GET", "/2/compliance/jobs/1", GET_JOB, policy, tracker, clock=lambda: 0.0, now=FakeClock()
    )


def test_call_returns_the_body_of_a_success_and_tracks_its_rate_window() -> None:
    tracker = RateLimitTracker()
    body = call_retry(tracker).answered(200, headers(150, 7, 2000.0), b'{"data": {"id": "1"}}')
    assert body == {"data": {"id": "1"}}
    limit = tracker.get(GET_JOB)
    assert limit is not None
    assert limit.remaining == 7


def test_call_raises_a_permanent_error_at_once() -> None:
    with pytest.raises(NotFoundError):
        call_retry(RateLimitTracker()).answered(404, {}, b'{"title": "Not Found"}')


def test_call_waits_for_the_window_reset_a_429_names() -> None:
    call = call_retry(RateLimitTracker())
    assert call.answered(429, headers(150, 0, 1060.0), b"") is None
    assert call.next_delay() == pytest.approx(61.0)


def test_call_waits_before_sending_into_a_spent_window() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 0, 1120.0))
    assert call_retry(tracker).wait_before_send() == pytest.approx(121.0)


def test_call_refuses_to_wait_for_a_reset_beyond_the_policy_bound() -> None:
    tracker = RateLimitTracker()
    tracker.update(GET_JOB, headers(150, 0, 1800.0))
    with pytest.raises(RateLimitedError) as raised:
        call_retry(tracker, max_rate_limit_wait=60.0).wait_before_send()
    assert raised.value.reset_at is not None
    assert raised.value.reset_at.timestamp() == pytest.approx(1801.0)


def test_call_that_never_got_an_answer_ends_as_an_unreachable_api() -> None:
    call = call_retry(RateLimitTracker())
    for _ in range(2):  # the first two of three attempts are retried
        call.broke(ConnectionError("refused"))
        assert call.next_delay() >= 0
    call.broke(ConnectionError("refused"))
    with pytest.raises(ServerError, match="could not be reached"):
        call.next_delay()
