"""The Omnisend REST API client (version 2026-03-15), on one pooled `requests.Session` per connection.

Errors come as a small typed hierarchy. 400/401/403/404/410 are never retried. 429 is never a
failure and never retried here: it raises `RateLimitedError` with `retry_after` at once so the
caller can defer the work. 5xx, timeouts and connection resets are retried with bounded, jittered
exponential backoff, then raise `TransientError`. Every request first takes a slot from the
`RateLimiter` (shared/ratelimit.py) the caller chose: the budget shared by every instance for the
run engine, a process-wide sliding window elsewhere.

The API key is kept out of every log line, exception message and repr; emails in log lines are masked.
"""
from __future__ import annotations

import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    from .ratelimit import RateLimiter

import orjson
import requests

API_VERSION = "2026-03-15"
DEFAULT_BASE_URL = "https://api.omnisend.com/api"
MAX_BATCH_ITEMS = 100
MAX_REQUEST_BYTES = 1_000_000  # Omnisend: keep a request under 1 MB
MAX_TAG_EMAILS = 250
MAX_TAGS_PER_CALL = 100
MAX_PAGE_SIZE = 250
USER_AGENT = "ci-omnisend-export/1"

log = logging.getLogger(__name__)

_EMAIL_IN_TEXT = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@|%40)([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_email(email: str) -> str:
    """'jane@example.com' -> 'j***@example.com' (for log lines and messages)."""
    local, at, domain = email.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}" if local else f"***@{domain}"


def mask_emails_in(text: str) -> str:
    """Every email address in free text masked, also URL-encoded ones (`jane%40example.com`)."""
    return _EMAIL_IN_TEXT.sub(lambda m: f"{m.group(1)}***{m.group(2)}{m.group(3)}", text)


class _MaskEmails(logging.Filter):
    """urllib3 logs request URLs at DEBUG; contact filters put emails in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_emails_in(record.getMessage())
        record.args = ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_MaskEmails())


# ---------------------------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldError:
    field: str
    code: str
    message: str


class OmnisendError(Exception):
    """An answer or failure of the Omnisend API; the message never contains the API key."""

    def __init__(self, message: str, *, status: int | None = None, title: str = "", detail: str = ""):
        super().__init__(message)
        self.status, self.title, self.detail = status, title, detail


class AuthenticationError(OmnisendError):
    """401: the key is missing, unknown or revoked."""


class PermissionDeniedError(OmnisendError):
    """403: the key lacks a scope the operation needs."""


class ValidationError(OmnisendError):
    """400: Omnisend refused the request; `field_errors` lists every bad field."""

    def __init__(self, message: str, *, field_errors: list[FieldError] | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.field_errors = field_errors or []


class NotFoundError(OmnisendError):
    """404."""


class VersionRetiredError(OmnisendError):
    """410 (the API version is retired), or 400 because the version header was refused."""


class RateLimitedError(OmnisendError):
    """429, or a limiter that wants the caller to defer: try again after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class TransientError(OmnisendError):
    """5xx, timeouts or connection resets that outlasted the bounded retries."""


class RequestTooLargeError(OmnisendError, ValueError):
    """Refused before sending: too many items, emails or tags, or a body over 1 MB."""


_ERRORS_BY_STATUS: dict[int, type[OmnisendError]] = {
    401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError, 410: VersionRetiredError,
}


# ---------------------------------------------------------------------------------------------
# Results.
# ---------------------------------------------------------------------------------------------

BATCH_STATUSES = ("pending", "inProgress", "finished", "stopped")


@dataclass(frozen=True)
class Batch:
    batch_id: str
    status: str  # "pending" | "inProgress" | "finished" | "stopped"
    total_count: int
    finished_count: int
    errors_count: int
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped")

    @classmethod
    def from_api(cls, body: dict) -> "Batch":
        return cls(
            batch_id=body["batchID"], status=body.get("status", "pending"),
            total_count=body.get("totalCount", 0), finished_count=body.get("finishedCount", 0),
            errors_count=body.get("errorsCount", 0), created_at=body.get("createdAt"),
            started_at=body.get("startedAt"), ended_at=body.get("endedAt"),
        )


@dataclass(frozen=True)
class BatchItemResult:
    item_id: str
    email: str | None  # the item's email identifier, from the request it echoes
    response_code: int
    ok: bool
    message: str  # Omnisend's error text for a failed item; "" when ok

    @classmethod
    def from_api(cls, item: dict) -> "BatchItemResult":
        code = int(item.get("responseCode") or 0)
        ok = 200 <= code < 300
        return cls(item_id=item.get("itemID", ""), email=_item_email(item.get("request")), response_code=code,
                   ok=ok, message="" if ok else _problem_text(item.get("response"), code))


def _item_email(request: Any) -> str | None:
    if not isinstance(request, dict):
        return None
    for identifier in request.get("identifiers") or []:
        if isinstance(identifier, dict) and identifier.get("type") == "email":
            return identifier.get("id")
    return None


def _problem_text(response: Any, code: int) -> str:
    """A one-line reason from a problem body: detail plus every field error."""
    if isinstance(response, str) and response:
        return response
    if not isinstance(response, dict):
        return f"failed with status {code}"
    reason = response.get("detail") or response.get("title") or response.get("error") or f"failed with status {code}"
    field_errors = [f"{e.get('field')}: {e.get('message')}" for e in response.get("errors") or [] if isinstance(e, dict)]
    return f"{reason} ({'; '.join(field_errors)})" if field_errors else reason


# ---------------------------------------------------------------------------------------------
# The client.
# ---------------------------------------------------------------------------------------------

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
        self._session = requests.Session()
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
        if not contacts:
            raise ValueError("a contact batch needs at least one contact")
        if len(contacts) > MAX_BATCH_ITEMS:
            raise RequestTooLargeError(
                f"a batch holds at most {MAX_BATCH_ITEMS} items; got {len(contacts)} (split it before sending)")
        body = self._call("POST", "/batches", body=contact_batch_body(contacts))
        log.debug("batch %s created with %d contacts", body.get("batchID"), len(contacts))
        return body["batchID"]

    def get_batch(self, batch_id: str) -> Batch:
        return Batch.from_api(self._call("GET", f"/batches/{_path_part(batch_id)}"))

    def list_batches(self, *, status: str | None = None, offset: int = 0, limit: int = MAX_PAGE_SIZE) -> list[Batch]:
        """One page of contact batches, newest first (GET /batches?endpoint=contacts)."""
        if status is not None and status not in BATCH_STATUSES:
            raise ValueError(f"unknown batch status {status!r}; expected one of {', '.join(BATCH_STATUSES)}")
        if not 1 <= limit <= MAX_PAGE_SIZE or offset < 0:
            raise ValueError(f"list_batches needs 1 <= limit <= {MAX_PAGE_SIZE} and offset >= 0")
        params: dict[str, Any] = {"endpoint": "contacts", "offset": offset, "limit": limit}
        if status:
            params["status"] = status
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
        body = self._call("GET", f"/batches/{_path_part(batch_id)}/items")
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
        if not emails:
            raise ValueError("a tag call needs at least one email")
        if not tags:
            raise ValueError("a tag call needs at least one tag")
        if len(emails) > MAX_TAG_EMAILS:
            raise RequestTooLargeError(f"a tag call takes at most {MAX_TAG_EMAILS} emails; got {len(emails)}")
        if len(tags) > MAX_TAGS_PER_CALL:
            raise RequestTooLargeError(f"a tag call takes at most {MAX_TAGS_PER_CALL} tags; got {len(tags)}")
        self._call(method, "/contacts/tags", body={"tags": list(tags), "emails": list(emails)}, kind="tags")
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
            + (f" ({_problem_text(problem, status)})" if isinstance(problem, dict) else ""),
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
        problem = body if isinstance(body, dict) else {}
        title, detail = str(problem.get("title", "")), str(problem.get("detail", ""))
        where = f"Omnisend {method} {path} answered {status}"
        text = mask_emails_in(f"{where}: {_problem_text(problem, status)}")
        if status == 429:
            retry_after = _retry_after(problem, response.headers, self._backoff(0))
            log.info("%s: rate limited, retry after %.1f s", where, retry_after)
            raise RateLimitedError(f"{text}; retry after {retry_after:g} s", retry_after=retry_after,
                                   status=status, title=title, detail=detail)
        if status == 400:
            field_errors = [FieldError(str(e.get("field", "")), str(e.get("code", "")), str(e.get("message", "")))
                            for e in problem.get("errors") or [] if isinstance(e, dict)]
            error_type = VersionRetiredError if any(e.field.lower() == "omnisend-version" for e in field_errors) \
                else ValidationError
            if error_type is ValidationError:
                raise ValidationError(text, field_errors=field_errors, status=status, title=title, detail=detail)
            raise VersionRetiredError(text, status=status, title=title, detail=detail)
        error_type = _ERRORS_BY_STATUS.get(status, OmnisendError)
        if status == 401:
            text += " (check the connection's API key)"
        elif status == 403:
            text += " (the API key lacks a permission this export needs)"
        raise error_type(text, status=status, title=title, detail=detail)


def contact_batch_body(contacts: list[dict]) -> dict:
    """The POST /batches body that upserts `contacts` (each a ContactRequest)."""
    return {"method": "POST", "endpoint": "contacts", "items": contacts}


def encode_body(body: Any, what: str) -> bytes:
    """A request body as sent: compact UTF-8 JSON, refused over Omnisend's 1 MB."""
    data = orjson.dumps(body)  # compact UTF-8, as json.dumps(separators=(",", ":"), ensure_ascii=False)
    if len(data) > MAX_REQUEST_BYTES:
        raise RequestTooLargeError(f"{what}: body of {len(data)} bytes exceeds {MAX_REQUEST_BYTES} bytes")
    return data


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(problem: dict, headers, fallback: float) -> float:
    """Seconds to wait: the body's retryAfter, else a Retry-After header (seconds or a date), else backoff."""
    value = problem.get("retryAfter")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    header = headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    return fallback


def _path_part(value: str) -> str:
    if not value or "/" in value or "?" in value:
        raise ValueError(f"not a valid ID for a URL path: {value!r}")
    return value
