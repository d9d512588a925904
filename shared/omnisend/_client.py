"""The client: one pooled `requests.Session` per connection, a slot from the caller's limiter before
every request, bounded and jittered retries of 5xx, timeouts and resets; nothing else retried."""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import requests

from ..environment import http_environment
from ._errors import RateLimitedError, TransientError, map_error, problem_text
from ._masking import mask_email, mask_emails_in
from ._models import BATCH_STATUSES, Batch, BatchItemResult
from ._request_helpers import (
    MAX_PAGE_SIZE,
    batch_list_params,
    contact_batch_body,
    encode_body,
    path_part,
    tag_change_body,
)

if TYPE_CHECKING:
    from ..ratelimit import RateLimiter

API_VERSION = "2026-03-15"
DEFAULT_BASE_URL = "https://api.omnisend.com/api"
USER_AGENT = "ci-omnisend-export/1"

log = logging.getLogger(__name__.rsplit(".", 1)[0])


class _SecretKey:
    """Holds the API key so that no repr, vars() dump or traceback local shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<hidden API key>"

    __str__ = __repr__


@dataclass
class _Attempt:
    """What one HTTP attempt produced: a response, or the text of a transport failure."""

    response: requests.Response | None = None
    failure: str = ""


class OmnisendClient:
    def __init__(self, api_key: str, *, limiter: "RateLimiter", base_url: str = DEFAULT_BASE_URL,
                 timeout: float = 10.0, max_retries: int = 4, backoff_seconds: float = 0.5,
                 max_backoff_seconds: float = 8.0):
        """`limiter` is the caller's choice (shared.ratelimit): BlobRateLimiter for work shared by
        every instance, SlidingWindowLimiter / shared_limiter() for one process."""
        if not api_key or not api_key.strip():
            raise ValueError("an Omnisend API key is required")
        self._key = _SecretKey(api_key.strip())
        self.base_url = base_url.rstrip("/")
        self.limiter: RateLimiter = limiter
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._session = http_environment(self.base_url).apply(requests.Session())
        self._session.headers.update({"Omnisend-Version": API_VERSION, "Accept": "application/json",
                                      "User-Agent": USER_AGENT})
        self._request_count = 0
        self._count_lock = threading.Lock()

    @classmethod
    def from_settings(cls, api_key: str, settings, **kwargs) -> "OmnisendClient":
        """A client for the app's configured API URL (`OMNISEND_API_URL`)."""
        return cls(api_key, base_url=settings.omnisend_api_url, **kwargs)

    def __repr__(self) -> str:
        return f"OmnisendClient(base_url={self.base_url!r}, version={API_VERSION!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "OmnisendClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def request_count(self) -> int:
        """Requests actually sent, retries included (for benchmarks)."""
        return self._request_count

    # -- operations --------------------------------------------------------------------------

    def check_key(self) -> None:
        """Prove the key works without writing anything (GET /contacts?limit=1)."""
        self._call("GET", "/contacts", params={"limit": 1})

    def get_brand(self) -> dict:
        return self._call("GET", "/brands/current")

    def upsert_contact(self, contact: dict) -> tuple[bool, dict]:
        """POST /contacts: (True, contact) when created, (False, contact) when an existing one was updated."""
        status, body = self._call_with_status("POST", "/contacts", body=contact)
        return status == 201, body

    def create_contact_batch(self, contacts: list[dict]) -> str:
        """POST /batches of contact upserts (1..100 items, under 1 MB); returns the batch ID."""
        body = self._call("POST", "/batches", body=contact_batch_body(contacts))
        log.debug("batch %s created with %d contacts", body.get("batchID"), len(contacts))
        return body["batchID"]

    def get_batch(self, batch_id: str) -> Batch:
        return Batch.from_api(self._call("GET", f"/batches/{path_part(batch_id)}"))

    def list_batches(self, *, status: str | None = None, offset: int = 0, limit: int = MAX_PAGE_SIZE) -> list[Batch]:
        """One page of contact batches, newest first (GET /batches?endpoint=contacts)."""
        params = batch_list_params(status, offset, limit, BATCH_STATUSES)
        return [Batch.from_api(b) for b in self._call("GET", "/batches", params=params).get("batches") or []]

    def get_batches(self, batch_ids: Iterable[str], *, max_pages: int = 4) -> dict[str, Batch]:
        """Status of many batches with few requests: list pages first, then one GET per batch not listed."""
        wanted = set(batch_ids)
        found: dict[str, Batch] = {}
        for page in range(max_pages):
            if not wanted - found.keys():
                break
            listed = self.list_batches(offset=page * MAX_PAGE_SIZE, limit=MAX_PAGE_SIZE)
            found.update({b.batch_id: b for b in listed if b.batch_id in wanted})
            if len(listed) < MAX_PAGE_SIZE:
                break
        for batch_id in sorted(wanted - found.keys()):
            found[batch_id] = self.get_batch(batch_id)
        return found

    def get_batch_items(self, batch_id: str) -> list[BatchItemResult]:
        """Per-item results of a batch: failed items first (errors[]), then successes (responses[])."""
        body = self._call("GET", f"/batches/{path_part(batch_id)}/items")
        results = [BatchItemResult.from_api(item) for item in body.get("errors") or []]
        results += [BatchItemResult.from_api(item) for item in body.get("responses") or []]
        for result in results:
            if not result.ok:
                log.debug("batch %s item for %s failed (%d): %s", batch_id, mask_email(result.email or ""),
                          result.response_code, mask_emails_in(result.message))
        return results

    def add_tags(self, emails: list[str], tags: list[str]) -> None:
        """POST /contacts/tags: one request; unknown emails are ignored by Omnisend."""
        self._change_tags("POST", emails, tags)

    def remove_tags(self, emails: list[str], tags: list[str]) -> None:
        """DELETE /contacts/tags: one request."""
        self._change_tags("DELETE", emails, tags)

    def _change_tags(self, method: str, emails: list[str], tags: list[str]) -> None:
        self._call(method, "/contacts/tags", body=tag_change_body(emails, tags), kind="tags")
        log.debug("%s tags %s for %d contacts (first %s)", "added" if method == "POST" else "removed",
                  tags, len(emails), mask_email(emails[0]))

    def iter_contacts(self, *, tag: str | None = None, email: str | None = None,
                      page_size: int = MAX_PAGE_SIZE) -> Iterator[dict]:
        """Every contact matching the filters, following cursors page by page."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        params: dict[str, Any] = {"limit": page_size}
        if tag is not None:
            params["tag"] = tag
        if email is not None:
            params["email"] = email
        while True:
            body = self._call("GET", "/contacts", params=params)
            yield from body.get("contacts") or []
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("hasMore") or not after:
                return
            params["after"] = after

    # -- transport ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs) -> Any:
        return self._call_with_status(method, path, **kwargs)[1]

    def _call_with_status(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
                          kind: str = "general") -> tuple[int, Any]:
        data = None if body is None else encode_body(body, f"{method} {path}")
        for attempt in range(self.max_retries + 1):
            outcome = self._send_once(method, path, params, data, kind, attempt)
            response = outcome.response
            if response is not None and response.status_code < 500:
                return self._interpret(method, path, response)
            reason = outcome.failure or f"status {response.status_code}"
            if attempt < self.max_retries:
                delay = self._backoff(attempt)
                log.info("%s %s: %s; retrying in %.2f s (attempt %d of %d)", method, path, reason, delay,
                         attempt + 1, self.max_retries + 1)
                time.sleep(delay)
        status = response.status_code if response is not None else None
        problem = _json_or_none(response) if response is not None else None
        raise TransientError(
            f"Omnisend {method} {path} failed after {self.max_retries + 1} attempts: {reason}"
            + (f" ({problem_text(problem, status)})" if isinstance(problem, dict) else ""),
            status=status, title=(problem or {}).get("title", "") if isinstance(problem, dict) else "",
            detail=(problem or {}).get("detail", "") if isinstance(problem, dict) else "")

    def _send_once(self, method, path, params, data, kind, attempt) -> _Attempt:
        self.limiter.acquire(kind)
        headers = {"Authorization": f"Omnisend-API-Key {self._key.reveal()}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        with self._count_lock:
            self._request_count += 1
        started = time.monotonic()
        try:
            response = self._session.request(method, self.base_url + path, params=params, data=data,
                                             headers=headers, timeout=self.timeout)
        except requests.Timeout:
            return _Attempt(failure=f"no answer within {self.timeout:g} s")
        except requests.ConnectionError as exc:
            return _Attempt(failure=f"connection failed: {mask_emails_in(str(exc))[:300]}")
        log.debug("%s %s -> %d in %.0f ms (attempt %d)", method, path, response.status_code,
                  (time.monotonic() - started) * 1000, attempt + 1)
        return _Attempt(response=response)

    def _backoff(self, attempt: int) -> float:
        """Exponential with equal jitter: half the step fixed, half random, capped."""
        step = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** attempt)
        return step / 2 + random.uniform(0, step / 2)

    def _interpret(self, method: str, path: str, response: requests.Response) -> tuple[int, Any]:
        status = response.status_code
        body = _json_or_none(response)
        if status < 400:
            return status, body
        error = map_error(method, path, status, body, response.headers, self._backoff(0))
        if isinstance(error, RateLimitedError):
            log.info("Omnisend %s %s answered 429: rate limited, retry after %.1f s", method, path,
                     error.retry_after)
        raise error


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None
