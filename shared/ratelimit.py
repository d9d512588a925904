"""A request budget shared by every worker instance of a connection, kept in one blob.

Omnisend limits requests per brand over a sliding window. However far the queue trigger scales out,
each request first reserves a slot here. The blob holds a GCRA "theoretical arrival time": one float,
updated with ETag concurrency, so no lease or database is needed. A worker whose slot is further away
than it should wait raises RateLimitedError, and the caller defers its chunk instead of sleeping.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Callable

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from .omnisend import RateLimitedError

WINDOW_SECONDS = 60.0


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
    """Implements the Omnisend client's Limiter protocol over a blob per connection and kind."""

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
        blob = self._container.get_blob_client(f"ratelimits/{self._key}-{kind}.json")
        while True:
            tat, etag = self._read(blob)
            now = self._clock()
            tat = max(tat, now)
            wait = tat - now - budget.burst * budget.interval
            if wait > self._max_wait:
                raise RateLimitedError(
                    f"request budget of {budget.requests_per_window}/{budget.window_seconds:.0f}s "
                    f"for {kind} requests is spent",
                    retry_after=wait,
                )
            if self._write(blob, tat + budget.interval, etag):
                if wait > 0:
                    self.waited_seconds += wait
                    self._sleep(wait)
                return
            self._sleep(random.uniform(0.0, 0.02))  # lost the race: another worker took a slot

    @staticmethod
    def _read(blob) -> tuple[float, str | None]:
        try:
            download = blob.download_blob()
        except ResourceNotFoundError:
            return 0.0, None
        return float(json.loads(download.readall())["tat"]), download.properties.etag

    @staticmethod
    def _write(blob, tat: float, etag: str | None) -> bool:
        body = json.dumps({"tat": tat})
        try:
            if etag is None:
                blob.upload_blob(body, overwrite=False)
            else:
                blob.upload_blob(body, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified)
            return True
        except (ResourceExistsError, ResourceModifiedError):
            return False
