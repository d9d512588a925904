"""Rate limiters: one interface, two implementations, chosen explicitly by whoever builds a client.

`RateLimiter` is what `OmnisendClient` asks before every request. `SlidingWindowLimiter` keeps one
process under a budget (tools, tests, one-off calls such as checking a key). `BlobRateLimiter` is the
budget shared by every worker instance of a connection, kept in one blob: Omnisend limits requests
per brand over a sliding window, and however far the queue trigger scales out, each request first
reserves a slot there. The blob holds a GCRA "theoretical arrival time", one float written with ETag
concurrency, so no lease or database is needed. A limiter whose slot is further away than the caller
should wait raises RateLimitedError, and the caller defers its work instead of sleeping.
"""
from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

from azure.storage.blob import ContainerClient

from . import blobstate
from .omnisend import RateLimitedError

WINDOW_SECONDS = 60.0
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
    requests_per_window: int
    window_seconds: float = WINDOW_SECONDS
    burst: int = 4

    @property
    def interval(self) -> float:
        # A full bucket admits burst + 1 requests at once, then one per interval: any window then
        # holds at most burst + 1 + window/interval = requests_per_window requests.
        steady = max(1, self.requests_per_window - self.burst - 1)
        return self.window_seconds / steady


class BlobRateLimiter:
    """A RateLimiter shared by every instance: GCRA over one blob per connection and kind."""

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

    def acquire(self, kind: str) -> None:
        budget = self._budgets.get(kind) or self._budgets["general"]
        name = f"ratelimits/{self._key}-{kind}.json"
        while True:
            tat, etag = self._read(name)
            now = self._clock()
            tat = max(tat, now)
            wait = tat - now - budget.burst * budget.interval
            if wait > self._max_wait:
                raise RateLimitedError(
                    f"request budget of {budget.requests_per_window}/{budget.window_seconds:.0f}s "
                    f"for {kind} requests is spent",
                    retry_after=wait,
                )
            try:
                blobstate.write_json(self._container, name, {"tat": tat + budget.interval},
                                     if_match=etag, create_only=etag is None)
            except blobstate.ConflictError:
                self._sleep(random.uniform(0.0, 0.02))  # lost the race: another worker took a slot
                continue
            if wait > 0:
                self.waited_seconds += wait
                self._sleep(wait)
            return

    def _read(self, name: str) -> tuple[float, str | None]:
        found = blobstate.read_json(self._container, name)
        return (0.0, None) if found is None else (float(found[0]["tat"]), found[1])
