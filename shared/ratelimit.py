"""Rate limiters: one interface, two implementations, chosen explicitly by whoever builds a client.

`RateLimiter` is what `OmnisendClient` asks before every request. `SlidingWindowLimiter` keeps one
process under a budget (tools, tests, one-off calls such as checking a key). `BlobRateLimiter` is the
budget shared by every worker instance of a connection, kept in one blob: Omnisend limits requests
per brand over a sliding window, and however far the queue trigger scales out, each request first
takes a slot there. The blob holds the grants of the last window, and a grant is taken only by a write
conditional on the blob's ETag, so no lease or database is needed; whether a grant may be taken is a
pure function (`decide`) of the grants stored, the time and the budget. A limiter whose slot is
further away than the caller should wait raises RateLimitedError, and the caller defers its work
instead of sleeping.
"""
from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from azure.storage.blob import ContainerClient

from . import blobstate
from .omnisend import RateLimitedError

WINDOW_SECONDS = 60.0
# How much later than an earlier-granted one a request may reach Omnisend: its grant's write (at most
# half of this, or the grant is stamped again), the trip, and the instances' clocks (kept by the host
# within milliseconds of each other).
MARGIN_SECONDS = 0.5
# The steady pace spreads a span's grants over the span and this much more (3 grants of the 400 a
# minute): grants whose lateness differs by up to this much leave the window unbound, off its edge.
PACE_SPARE_SECONDS = 0.5
KINDS = ("general", "tags")


class RateLimiter(Protocol):
    def acquire(self, kind: str) -> None:
        """Wait for a slot of `kind` ("general" | "tags"), or raise RateLimitedError to defer."""


class SlidingWindowLimiter:
    """At most N requests of a kind in any window (N per minute by default); per process, thread-safe.

    `max_wait_seconds` turns a long wait into RateLimitedError so a caller with a deadline (a function
    invocation) can defer instead of sleeping. `margin_seconds` widens the window a little because the
    server measures arrival times, which lag our send times by a varying latency.
    """

    def __init__(self, requests_per_minute: int = 400, tag_requests_per_minute: int = 60,
                 window_seconds: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, *, max_wait_seconds: float | None = None,
                 margin_seconds: float | None = None):
        if requests_per_minute < 1 or tag_requests_per_minute < 1:
            raise ValueError("rate limits must be at least 1 request per window")
        self.limits = {"general": requests_per_minute, "tags": tag_requests_per_minute}
        self.window_seconds = window_seconds
        self.margin_seconds = min(1.0, window_seconds * 0.02) if margin_seconds is None else margin_seconds
        self.max_wait_seconds = max_wait_seconds
        self._clock, self._sleep = clock, sleep
        self._sent: dict[str, deque[float]] = {kind: deque() for kind in self.limits}
        self._lock = threading.Lock()

    def acquire(self, kind: str) -> None:
        if kind not in self.limits:
            raise ValueError(f"unknown rate-limit kind {kind!r}; expected one of {', '.join(self.limits)}")
        while True:
            wait = self._try_take(kind)
            if wait <= 0:
                return
            if self.max_wait_seconds is not None and wait > self.max_wait_seconds:
                raise RateLimitedError(f"client-side {kind} budget spent; retry in {wait:.1f} s", retry_after=wait)
            self._sleep(wait)

    def _try_take(self, kind: str) -> float:
        """Take a slot now (returns 0), or return how long until the oldest slot leaves the window."""
        span = self.window_seconds + self.margin_seconds
        with self._lock:
            now = self._clock()
            sent = self._sent[kind]
            while sent and sent[0] <= now - span:
                sent.popleft()
            if len(sent) < self.limits[kind]:
                sent.append(now)
                return 0.0
            return sent[0] + span - now


# One in-process limiter per key, base URL and budget: the budget belongs to the brand, not to a
# client object, and a process may build several clients of one key.
_shared_limiters: dict[tuple, SlidingWindowLimiter] = {}
_shared_limiters_lock = threading.Lock()


def shared_limiter(api_key: str, base_url: str, requests_per_minute: int = 400,
                   tag_requests_per_minute: int = 60) -> SlidingWindowLimiter:
    """The process's sliding-window limiter for this key (created on first use)."""
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    key = (fingerprint, base_url.rstrip("/"), requests_per_minute, tag_requests_per_minute)
    with _shared_limiters_lock:
        if key not in _shared_limiters:
            _shared_limiters[key] = SlidingWindowLimiter(requests_per_minute, tag_requests_per_minute)
        return _shared_limiters[key]


@dataclass(frozen=True)
class Budget:
    """A connection's budget of one kind: `requests_per_window` per sliding `window_seconds`, as
    Omnisend counts them, less what covers the trip from our grant to Omnisend's count.

    Grants are counted over `window_seconds + margin_seconds`: a request may reach Omnisend up to
    `margin_seconds` later than another one granted before it (how long the grant's own write took,
    at most half the margin, or the grant is stamped again before use; the request's trip; the instances' clocks),
    and a window of Omnisend's still holds no more than we granted in the wider one. `slack`
    requests of each window are never granted, for the one request whose trip took longer still.
    """

    requests_per_window: int
    window_seconds: float = WINDOW_SECONDS
    margin_seconds: float = MARGIN_SECONDS
    slack: int = 1
    burst: int = 2  # pacing: a grant may come up to `burst` steady intervals ahead of its slot

    def __post_init__(self) -> None:
        if (self.requests_per_window < 1 or self.window_seconds <= 0 or self.margin_seconds < 0 or self.slack < 0
                or self.burst < 0):
            raise ValueError(f"not a usable rate budget: {self}")

    @property
    def grants_per_span(self) -> int:
        """How many grants any span may hold (at least one, whatever the slack)."""
        return max(1, self.requests_per_window - self.slack)

    @property
    def span_ms(self) -> int:
        """The span grants are counted over, in whole milliseconds (rounded up)."""
        return math.ceil((self.window_seconds + self.margin_seconds) * 1000)

    @property
    def interval_ms(self) -> float:
        """The steady rate's spacing: the span's grants spread evenly over it (not spent in one burst at its
        start) and PACE_SPARE_SECONDS more. At the span's own rate the window would bind whenever a grant
        came late, grants would sit at its edge, and a request whose trip took longer than the margin
        would tip a window of Omnisend's over; the spare keeps them off it."""
        return (self.span_ms + PACE_SPARE_SECONDS * 1000) / self.grants_per_span


@dataclass(frozen=True)
class Decision:
    """The outcome of asking for a slot: granted (with the grants to store, the new one included), or
    not, with how long until one frees. Times are milliseconds of the limiters' shared clock."""

    granted: bool
    grants: tuple[int, ...]
    wait_ms: int = 0


def decide(grants: Sequence[int], now_ms: int, budget: Budget) -> Decision:
    """Whether a request may be granted at `now_ms`, given the grants stored: a pure function.

    A grant is taken only when fewer than `grants_per_span` stored grants lie after `now_ms - span`
    (and, to spread the budget over the window, when it is due on the steady timeline, see `paced_at`).
    Stored grants later than `now_ms` (another instance's clock runs ahead) count as well: every span
    that holds `now_ms` lies within (now_ms - span, +inf), so none of them ends up holding more than
    `grants_per_span`. That holds whatever order the instances' writes arrive in, because each write
    is conditional on the grants it counted (an ETag), and it is the invariant the tests check.
    """
    span = budget.span_ms
    recent = sorted(g for g in grants if g > now_ms - span)
    allowed = budget.grants_per_span
    # A slot frees when the allowed-th latest grant leaves the span: at now = g + span, g no longer counts.
    wait = recent[-allowed] + span - now_ms if len(recent) >= allowed else 0
    due = paced_at(recent, budget)
    if due > now_ms:
        wait = max(wait, math.ceil(due - now_ms))
    if wait > 0:
        return Decision(False, tuple(recent), wait)
    recent.append(now_ms)
    recent.sort()
    return Decision(True, tuple(recent))


def paced_at(recent: Sequence[int], budget: Budget) -> float:
    """When the next grant is due on the steady timeline (GCRA, not needed for the guarantee): each grant
    of the span takes the next slot one interval after the one before, or its own time when it came
    later, and a grant may come `burst` intervals ahead of its slot. The timeline is theoretical, so a
    grant taken a little late (the worker was busy, its wake-up or write was slow) does not push the
    ones after it back; only a gap longer than the burst restarts it."""
    interval = budget.interval_ms
    slot = -math.inf
    for grant in recent:  # sorted
        slot = max(slot, grant) + interval
    return slot - budget.burst * interval


def grants_from_json(value: Any) -> tuple[int, ...]:
    """The grants a budget blob holds: `{"base": ms, "grants": [ms after base, ...]}`. A blob of the
    earlier GCRA form (`{"tat": ...}`) holds none."""
    if not isinstance(value, dict) or "grants" not in value:
        return ()
    base = int(value.get("base", 0))
    return tuple(base + int(offset) for offset in value["grants"])


def grants_to_json(grants: Sequence[int]) -> dict:
    base = min(grants, default=0)
    return {"base": base, "grants": [g - base for g in grants]}


class BlobRateLimiter:
    """A RateLimiter shared by every instance: a sliding window of grants in one blob per connection and kind.

    The blob holds the grants of the last span (milliseconds of `clock`, Unix time by default). A
    slot is taken by writing the grants with the new one added, conditional on the blob's ETag: of
    two instances that counted the same grants only one write succeeds, and the other counts again.
    """

    def __init__(
        self,
        container: ContainerClient,
        key: str,
        budgets: dict[str, Budget],
        *,
        max_wait: float = 5.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._container = container
        self._key = key
        self._budgets = budgets
        self._max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self.waited_seconds = 0.0
        self.late_grants = 0  # grants whose write returned too late, stamped again before use
        self._known: dict[str, tuple[tuple[int, ...], str]] = {}  # blob -> (grants, ETag) as last read or written
        self._known_lock = threading.Lock()

    def acquire(self, kind: str) -> None:
        budget = self._budgets.get(kind) or self._budgets["general"]
        name = f"ratelimits/{self._key}-{kind}.json"
        late: int | None = None  # the stamp of our grant whose write returned too late, unused
        while True:
            with self._known_lock:
                known = self._known.get(name)
            fresh = known is None
            if fresh:
                known = self._read(name)
                if known[1] is not None:
                    with self._known_lock:
                        self._known[name] = known
            grants, etag = known
            now = self._clock()
            now_ms = math.ceil(now * 1000)
            if late is not None and late in grants:
                # A grant not used yet can be moved to now: counted without it, stamped again.
                counted = list(grants)
                counted.remove(late)
                decision = decide(counted, now_ms, budget)
            else:
                decision = decide(grants, now_ms, budget)
            if not decision.granted:
                wait = decision.wait_ms / 1000
                if wait > self._max_wait:
                    raise RateLimitedError(
                        f"request budget of {budget.requests_per_window}/{budget.window_seconds:.0f}s "
                        f"for {kind} requests is spent",
                        retry_after=wait,
                    )
                self.waited_seconds += wait
                self._sleep(wait + random.uniform(0.0, 0.01))  # the instances waiting do not all wake at once
                continue
            try:
                written = blobstate.write_json(self._container, name, grants_to_json(decision.grants),
                                               if_match=etag, create_only=etag is None)
            except blobstate.ConflictError:
                with self._known_lock:
                    if self._known.get(name) == known:
                        self._known.pop(name, None)  # someone else wrote: count what the blob holds
                if fresh:
                    self._sleep(random.uniform(0.0, 0.02))  # lost the race: another worker took a slot
                continue
            with self._known_lock:
                self._known[name] = (decision.grants, written)
            if late is not None or self._clock() - now <= budget.margin_seconds / 2:
                return
            # The request would reach Omnisend later than the margin allows for: the grant is not
            # used but stamped again, once (it stays counted meanwhile; a write as slow again is
            # what the slack of the budget is for).
            self.late_grants += 1
            late = now_ms

    def _read(self, name: str) -> tuple[tuple[int, ...], str | None]:
        found = blobstate.read_json(self._container, name)
        return ((), None) if found is None else (grants_from_json(found[0]), found[1])
