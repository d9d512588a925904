"""Both rate limiters against simulated clocks: the shared budget (a sliding window of grants in one
blob, in Azurite; its decision a pure function) and the in-process sliding window. No window ever
holds more requests than the budget: every window is checked, as Omnisend's sandbox counts them."""
from __future__ import annotations

import bisect
import heapq
import math
import random
import threading

import pytest

from shared import blobstate
from shared.omnisend import RateLimitedError
from shared.ratelimit import (
    MARGIN_SECONDS, BlobRateLimiter, Budget, RateLimiter, SlidingWindowLimiter, decide, grants_from_json,
    grants_to_json,
)
from shared.storage import container

WINDOW = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    @property
    def stamp(self) -> float:
        """Now as the limiter stamps a grant: whole milliseconds, rounded up (a grant 60.9995 s after
        another may carry a stamp 61.000 s after it)."""
        return math.ceil(self.now * 1000) / 1000


@pytest.fixture()
def state(settings):
    client = container(settings, settings.state_container)
    client.create_container()
    return client


def busiest_window(times: list[float], window: float) -> int:
    """The most requests any sliding window holds, counted as the sandbox counts them: a request at t
    is in the window that ends at `now` when now - window < t <= now. The busiest window ends at a
    request, so every window is checked by checking those."""
    times = sorted(times)
    return max((i + 1 - bisect.bisect_right(times, t - window) for i, t in enumerate(times)), default=0)


def test_busiest_window_counts_as_the_sandbox_does():
    assert busiest_window([0.0, 60.0], 60.0) == 1  # at 60 the request of 0 has left the window
    assert busiest_window([0.0, 59.999, 60.0], 60.0) == 2
    assert busiest_window([5.0, 1.0, 3.0], 60.0) == 3 and busiest_window([], 60.0) == 0


# --- the decision, without storage (times in milliseconds)


def test_a_grant_is_taken_while_the_span_holds_fewer_than_the_budget_allows():
    budget = Budget(3, window_seconds=10.0, margin_seconds=1.0)  # 2 grants (one of slack) per 11 s
    first = decide((), 1_000, budget)
    assert first.granted and first.grants == (1_000,)
    second = decide(first.grants, 5_000, budget)
    assert second.granted and second.grants == (1_000, 5_000)
    refused = decide(second.grants, 6_000, budget)
    assert not refused.granted and refused.wait_ms == 1_000 + 11_000 - 6_000
    freed = decide(second.grants, 12_000, budget)  # at exactly grant + span the grant no longer counts
    assert freed.granted and freed.grants == (5_000, 12_000)  # and what left the span is not stored


def test_grants_stamped_ahead_of_this_clock_count_too():
    budget = Budget(3, window_seconds=10.0, margin_seconds=1.0)
    # Another instance's clock runs ahead: its grants lie in our future, and still fill our span.
    refused = decide((20_000, 21_000), 19_000, budget)
    assert not refused.granted and refused.wait_ms == 20_000 + 11_000 - 19_000


def test_the_budget_grants_at_least_one_whatever_the_slack():
    assert Budget(1).grants_per_span == 1 and Budget(400).grants_per_span == 399
    assert Budget(400).span_ms == 60_500 and Budget(400, margin_seconds=1.0).span_ms == 61_000
    with pytest.raises(ValueError):
        Budget(0)


def test_the_stored_form_round_trips_and_an_earlier_form_holds_no_grants():
    grants = (1_764_000_000_123, 1_764_000_000_500, 1_764_000_061_000)
    stored = grants_to_json(grants)
    assert stored == {"base": grants[0], "grants": [0, 377, 60_877]}
    assert grants_from_json(stored) == grants
    assert grants_from_json({"tat": 1_764_000_000.5}) == () and grants_from_json(grants_to_json(())) == ()


def test_grants_taken_late_do_not_push_the_steady_pace_back():
    """A worker always 0.3 s late (busy after a grant, slow to wake after a wait) still gets the steady
    rate: the pace is a timeline of slots one interval apart, not counted from when grants were taken
    (counted from those, as the budget once paced, 569 grants came in 600 s)."""
    budget = Budget(61, window_seconds=60.0, margin_seconds=0.0)  # 60 a minute: one a second
    stored, now_ms, times = (), 0, []
    while now_ms < 600_000:
        decision = decide(stored, now_ms, budget)
        if decision.granted:
            stored = decision.grants
            times.append(now_ms / 1000)
            now_ms += 300
        else:
            now_ms += decision.wait_ms + 300
    assert len(times) >= 0.99 * 600_000 / budget.interval_ms and busiest_window(times, WINDOW) <= budget.grants_per_span
    assert busiest_window(times, 10.0) <= 10 + budget.burst + 1  # spread over the window, not one burst


@pytest.mark.parametrize("seed", range(6))
def test_no_window_of_arrivals_holds_more_than_the_budget_whatever_the_clocks_and_the_order(seed):
    """Instances whose clocks disagree by up to half the margin ask in a random order; their requests
    reach Omnisend up to half the margin after their grant. Every 60 s window of arrivals (true time)
    holds at most the budget less its slack, and the budget is used."""
    rng = random.Random(seed)
    budget = Budget(rng.choice([5, 60, 400]))
    skews = [rng.uniform(-MARGIN_SECONDS / 4, MARGIN_SECONDS / 4) for _ in range(8)]  # half the margin apart
    stored: tuple[int, ...] = ()
    arrivals, now = [], 1_000_000.0
    while now < 1_000_000.0 + 300:
        now += rng.expovariate(budget.requests_per_window / 10)  # asking about six times as often as allowed
        instance = rng.randrange(len(skews))
        decision = decide(stored, round((now + skews[instance]) * 1000), budget)
        if decision.granted:
            stored = decision.grants
            arrivals.append(now + rng.uniform(0.0, MARGIN_SECONDS / 2))
    assert busiest_window(arrivals, WINDOW) <= budget.requests_per_window - 1
    assert len(arrivals) >= 0.9 * budget.grants_per_span * 300 / (WINDOW + MARGIN_SECONDS)


# --- the shared budget in Azurite


@pytest.mark.parametrize("limit", [10, 60])
def test_one_limiter_keeps_one_request_of_slack_in_every_window(state, limit):
    clock = Clock()
    limiter = BlobRateLimiter(state, "conn", {"general": Budget(limit)}, max_wait=120, clock=clock,
                              sleep=clock.sleep)
    times = []
    for _ in range(3 * limit):
        limiter.acquire("general")
        times.append(clock.stamp)
    # One request of slack: a request's trip to Omnisend may shift it across a window's edge.
    assert busiest_window(times, WINDOW) == limit - 1
    assert busiest_window(times, WINDOW + MARGIN_SECONDS) == limit - 1  # over the margin too
    # and it does use the budget: 3 budgets' worth in less than 4 spans (paced, not one burst a span)
    assert times[-1] - times[0] < 4 * (WINDOW + MARGIN_SECONDS)
    assert busiest_window(times, 10.0) <= limit * 10 / 60 + 5  # spread over the window


def test_a_worker_that_would_wait_too_long_is_told_to_defer(state):
    clock = Clock()
    limiter = BlobRateLimiter(state, "conn", {"general": Budget(10)}, max_wait=5, clock=clock, sleep=clock.sleep)
    with pytest.raises(RateLimitedError) as deferred:
        for _ in range(20):
            limiter.acquire("general")
    assert 5 < deferred.value.retry_after <= WINDOW + MARGIN_SECONDS


def test_a_grant_whose_write_returned_late_is_stamped_again_not_used(state):
    class SlowWrites(Clock):
        """Each reading of the clock is 0.3 s after the previous one: a write takes longer than half the margin."""

        def __call__(self) -> float:
            self.now += 0.3
            return self.now

    clock = SlowWrites()
    limiter = BlobRateLimiter(state, "conn", {"general": Budget(5, margin_seconds=0.5)}, clock=clock,
                              sleep=clock.sleep)
    limiter.acquire("general")
    assert limiter.late_grants == 1  # the first grant was not used: stamped again, once
    stored, _ = blobstate.read_json(state, "ratelimits/conn-general.json")
    # moved to the second stamp (0.9 s), not added to: no budget is burnt by a slow write
    assert grants_from_json(stored) == (math.ceil(clock.now * 1000),)


class SimulatedClock:
    """Simulated time shared by worker threads: it stands still while any worker is busy (reading or
    writing the blob) and jumps to the earliest wake-up once every worker sleeps."""

    def __init__(self, workers: int, start: float = 1_000_000.0) -> None:
        self.now = start
        self._busy = workers
        self._wake_ups: list[float] = []
        self._changed = threading.Condition()

    def __call__(self) -> float:
        with self._changed:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._changed:
            wake_up = self.now + max(0.0, seconds)
            heapq.heappush(self._wake_ups, wake_up)
            self._busy -= 1
            self._advance()
            while self.now < wake_up:
                self._changed.wait()

    def leave(self) -> None:
        with self._changed:
            self._busy -= 1
            self._advance()

    def _advance(self) -> None:
        if self._busy == 0 and self._wake_ups:
            self.now = max(self.now, self._wake_ups[0])
            while self._wake_ups and self._wake_ups[0] <= self.now:
                heapq.heappop(self._wake_ups)
                self._busy += 1
            self._changed.notify_all()


def test_eight_workers_never_exceed_the_budget_in_any_window(state):
    """Eight workers (threads, each its own limiter as on its own instance, clocks up to half the margin
    apart) share one budget blob in Azurite for four simulated minutes, asking far more often than the
    budget allows; a deferred worker comes back when told. Their requests reach Omnisend up to half the
    margin after the grant. No 60 s window of requests (arrival times, as the sandbox counts) holds more than the
    budget less one, for the general budget and the tag budget separately, and both budgets are used."""
    workers, minutes = 8, 4
    budgets = {"general": Budget(40), "tags": Budget(8)}
    clock = SimulatedClock(workers)
    end = clock.now + minutes * 60
    arrivals: dict[str, list[float]] = {"general": [], "tags": []}
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work(number: int) -> None:
        rng = random.Random(number)
        skew = rng.uniform(-MARGIN_SECONDS / 4, MARGIN_SECONDS / 4)
        limiter = BlobRateLimiter(state, "conn", budgets, max_wait=5.0, clock=lambda: clock() + skew,
                                  sleep=clock.sleep)
        try:
            while clock() < end:
                kind = "tags" if rng.random() < 0.25 else "general"
                try:
                    limiter.acquire(kind)
                except RateLimitedError as deferred:
                    clock.sleep(deferred.retry_after)  # the message comes back after its visibility delay
                    continue
                with lock:
                    arrivals[kind].append(clock() + rng.uniform(0.0, MARGIN_SECONDS / 2))
                clock.sleep(rng.uniform(0.02, 0.4))  # the request, and the work before the next one
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)
        finally:
            clock.leave()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures and not any(thread.is_alive() for thread in threads)
    for kind, budget in budgets.items():
        times = arrivals[kind]
        assert busiest_window(times, WINDOW) <= budget.requests_per_window - 1, kind
        assert len(times) >= budget.grants_per_span * minutes * 60 / (WINDOW + MARGIN_SECONDS) * 0.9, kind  # used


def test_workers_share_the_budget_through_the_blob(state):
    clock = Clock()
    budgets = {"general": Budget(10), "tags": Budget(5)}
    workers = [BlobRateLimiter(state, "conn", budgets, max_wait=600, clock=clock, sleep=clock.sleep) for _ in range(3)]
    times = []
    for i in range(30):
        workers[i % 3].acquire("general")
        times.append(clock.stamp)
    assert busiest_window(times, WINDOW) == 9


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


def test_a_limiter_counts_its_own_last_write_again_and_reads_when_another_wrote(state, monkeypatch):
    reads = []
    read_json = blobstate.read_json
    monkeypatch.setattr(blobstate, "read_json", lambda *a, **k: reads.append(a[1]) or read_json(*a, **k))
    clock = Clock()
    budgets = {"general": Budget(10)}
    one, other = (BlobRateLimiter(state, "conn", budgets, max_wait=600, clock=clock, sleep=clock.sleep)
                  for _ in range(2))
    for _ in range(5):
        one.acquire("general")
    assert len(reads) == 1  # the first grant read the blob; the next four counted what it wrote
    other.acquire("general")  # another instance writes: the first one's ETag is stale
    times = [clock.stamp]
    for _ in range(8):
        one.acquire("general")
        times.append(clock.stamp)
    # `other` read once (it waited out the pace of `one`'s five on what it read, and wrote on that), `one`
    # once more after its write failed
    assert len(reads) == 3
    assert busiest_window(times, WINDOW) <= 9  # the budget less one, as ever
