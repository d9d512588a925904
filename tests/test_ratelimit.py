"""Both rate limiters against a simulated clock: the shared budget (GCRA in one blob, in Azurite) and
the in-process sliding window. No window ever holds more requests than the budget."""
from __future__ import annotations

import threading

import pytest

from shared.omnisend import RateLimitedError
from shared.ratelimit import BlobRateLimiter, Budget, RateLimiter, SlidingWindowLimiter
from shared.storage import container


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def state(settings):
    client = container(settings, settings.state_container)
    client.create_container()
    return client


def busiest_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


@pytest.mark.parametrize("limit", [10, 60])
def test_no_sliding_window_holds_more_than_the_budget(state, limit):
    clock = Clock()
    limiter = BlobRateLimiter(state, "conn", {"general": Budget(limit)}, max_wait=120, clock=clock,
                              sleep=clock.sleep)
    times = []
    for _ in range(3 * limit):
        limiter.acquire("general")
        times.append(clock.now)
    # One request of slack: a request's trip to Omnisend may shift it across a window's edge.
    assert busiest_window(times, 60.0) == limit - 1
    steady = [t for t in times if t > times[-1] - 60.0]
    assert len(steady) >= limit - 5  # and past the first burst it keeps using the budget


def test_a_worker_that_would_wait_too_long_is_told_to_defer(state):
    clock = Clock()
    limiter = BlobRateLimiter(state, "conn", {"general": Budget(10)}, max_wait=5, clock=clock, sleep=clock.sleep)
    with pytest.raises(RateLimitedError) as deferred:
        for _ in range(20):
            limiter.acquire("general")
    assert 5 < deferred.value.retry_after <= 60


def test_workers_share_the_budget_through_the_blob(state):
    clock = Clock()
    budgets = {"general": Budget(10), "tags": Budget(5)}
    workers = [BlobRateLimiter(state, "conn", budgets, max_wait=600, clock=clock, sleep=clock.sleep) for _ in range(3)]
    times = []
    for i in range(30):
        workers[i % 3].acquire("general")
        times.append(clock.now)
    assert busiest_window(times, 60.0) == 9


def test_both_limiters_are_rate_limiters(state):
    limiters: list[RateLimiter] = [SlidingWindowLimiter(), BlobRateLimiter(state, "conn", {"general": Budget(10)})]
    for limiter in limiters:
        limiter.acquire("general")


# --- the in-process sliding window


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_sliding_window_waits_for_the_oldest_slot():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 1, window_seconds=10.0, clock=clock, sleep=clock.sleep, margin_seconds=0)
    limiter.acquire("general")
    clock.now = 4.0
    limiter.acquire("general")
    limiter.acquire("tags")  # a separate budget
    limiter.acquire("general")  # waits until the first slot (t=0) leaves the window
    assert clock.sleeps == [6.0] and clock.now == 10.0
    with pytest.raises(ValueError, match="unknown rate-limit kind"):
        limiter.acquire("products")


def test_limiter_can_ask_the_caller_to_defer_instead_of_sleeping():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, 1, window_seconds=60.0, clock=clock, sleep=clock.sleep,
                                   max_wait_seconds=5.0, margin_seconds=0)
    limiter.acquire("tags")
    clock.now = 10.0
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire("tags")
    assert caught.value.retry_after == pytest.approx(50.0) and clock.sleeps == []
