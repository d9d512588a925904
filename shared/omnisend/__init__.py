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

from ._client import API_VERSION, DEFAULT_BASE_URL, USER_AGENT, OmnisendClient
from ._errors import (
    AuthenticationError,
    FieldError,
    NotFoundError,
    OmnisendError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTooLargeError,
    TransientError,
    ValidationError,
    VersionRetiredError,
    map_error,
)
from ._masking import _MaskEmails, mask_email, mask_emails_in
from ._models import BATCH_STATUSES, Batch, BatchItemResult
from ._request_helpers import (
    MAX_BATCH_ITEMS,
    MAX_PAGE_SIZE,
    MAX_REQUEST_BYTES,
    MAX_TAG_EMAILS,
    MAX_TAGS_PER_CALL,
    contact_batch_body,
    encode_body,
    tag_change_body,
)

__all__ = [
    "API_VERSION", "BATCH_STATUSES", "DEFAULT_BASE_URL", "MAX_BATCH_ITEMS", "MAX_PAGE_SIZE", "MAX_REQUEST_BYTES",
    "MAX_TAG_EMAILS", "MAX_TAGS_PER_CALL", "USER_AGENT",
    "AuthenticationError", "Batch", "BatchItemResult", "FieldError", "NotFoundError", "OmnisendClient",
    "OmnisendError", "PermissionDeniedError", "RateLimitedError", "RequestTooLargeError", "TransientError",
    "ValidationError", "VersionRetiredError",
    "contact_batch_body", "encode_body", "map_error", "mask_email", "mask_emails_in", "tag_change_body",
]

# urllib3 logs request URLs at DEBUG, and contact filters put emails in them.
logging.getLogger("urllib3.connectionpool").addFilter(_MaskEmails())
