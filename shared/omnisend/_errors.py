"""The error hierarchy (one root, `OmnisendError`; a subclass per what went wrong) and `map_error`,
which chooses the error for an HTTP answer of 400 or more."""
from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Mapping

from ._masking import mask_emails_in


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


def map_error(method: str, path: str, status: int, body: Any, headers: Mapping[str, str],
              fallback_retry_after: float) -> OmnisendError:
    """The error for an answer of `status` >= 400 (returned, not raised: the caller raises it)."""
    problem = body if isinstance(body, dict) else {}
    title, detail = str(problem.get("title", "")), str(problem.get("detail", ""))
    where = f"Omnisend {method} {path} answered {status}"
    text = mask_emails_in(f"{where}: {problem_text(problem, status)}")
    if status == 429:
        wait = retry_after(problem, headers, fallback_retry_after)
        return RateLimitedError(f"{text}; retry after {wait:g} s", retry_after=wait,
                                status=status, title=title, detail=detail)
    if status == 400:
        field_errors = [FieldError(str(e.get("field", "")), str(e.get("code", "")), str(e.get("message", "")))
                        for e in problem.get("errors") or [] if isinstance(e, dict)]
        if any(e.field.lower() == "omnisend-version" for e in field_errors):
            return VersionRetiredError(text, status=status, title=title, detail=detail)
        return ValidationError(text, field_errors=field_errors, status=status, title=title, detail=detail)
    if status == 401:
        text += " (check the connection's API key)"
    elif status == 403:
        text += " (the API key lacks a permission this export needs)"
    return _ERRORS_BY_STATUS.get(status, OmnisendError)(text, status=status, title=title, detail=detail)


def problem_text(response: Any, code: int) -> str:
    """A one-line reason from a problem body: detail plus every field error."""
    if isinstance(response, str) and response:
        return response
    if not isinstance(response, dict):
        return f"failed with status {code}"
    reason = response.get("detail") or response.get("title") or response.get("error") or f"failed with status {code}"
    field_errors = [f"{e.get('field')}: {e.get('message')}" for e in response.get("errors") or [] if isinstance(e, dict)]
    return f"{reason} ({'; '.join(field_errors)})" if field_errors else reason


def retry_after(problem: dict, headers, fallback: float) -> float:
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
