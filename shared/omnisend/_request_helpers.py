"""Building requests (bodies, paths, limits), apart from sending them: nothing here does I/O."""
from __future__ import annotations

from typing import Any

import orjson

from ._errors import RequestTooLargeError

MAX_BATCH_ITEMS = 100
MAX_REQUEST_BYTES = 1_000_000  # Omnisend: keep a request under 1 MB
MAX_TAG_EMAILS = 250
MAX_TAGS_PER_CALL = 100
MAX_PAGE_SIZE = 250


def contact_batch_body(contacts: list[dict]) -> dict:
    """The POST /batches body that upserts `contacts` (each a ContactRequest), 1..100 of them."""
    if not contacts:
        raise ValueError("a contact batch needs at least one contact")
    if len(contacts) > MAX_BATCH_ITEMS:
        raise RequestTooLargeError(
            f"a batch holds at most {MAX_BATCH_ITEMS} items; got {len(contacts)} (split it before sending)")
    return {"method": "POST", "endpoint": "contacts", "items": contacts}


def tag_change_body(emails: list[str], tags: list[str]) -> dict:
    """The body of POST / DELETE /contacts/tags: 1..250 emails, 1..100 tags."""
    if not emails:
        raise ValueError("a tag call needs at least one email")
    if not tags:
        raise ValueError("a tag call needs at least one tag")
    if len(emails) > MAX_TAG_EMAILS:
        raise RequestTooLargeError(f"a tag call takes at most {MAX_TAG_EMAILS} emails; got {len(emails)}")
    if len(tags) > MAX_TAGS_PER_CALL:
        raise RequestTooLargeError(f"a tag call takes at most {MAX_TAGS_PER_CALL} tags; got {len(tags)}")
    return {"tags": list(tags), "emails": list(emails)}


def batch_list_params(status: str | None, offset: int, limit: int, statuses: tuple[str, ...]) -> dict[str, Any]:
    """Query of GET /batches?endpoint=contacts (one page)."""
    if status is not None and status not in statuses:
        raise ValueError(f"unknown batch status {status!r}; expected one of {', '.join(statuses)}")
    if not 1 <= limit <= MAX_PAGE_SIZE or offset < 0:
        raise ValueError(f"list_batches needs 1 <= limit <= {MAX_PAGE_SIZE} and offset >= 0")
    params: dict[str, Any] = {"endpoint": "contacts", "offset": offset, "limit": limit}
    if status:
        params["status"] = status
    return params


def encode_body(body: Any, what: str) -> bytes:
    """A request body as sent: compact UTF-8 JSON, refused over Omnisend's 1 MB."""
    data = orjson.dumps(body)  # compact UTF-8, as json.dumps(separators=(",", ":"), ensure_ascii=False)
    if len(data) > MAX_REQUEST_BYTES:
        raise RequestTooLargeError(f"{what}: body of {len(data)} bytes exceeds {MAX_REQUEST_BYTES} bytes")
    return data


def path_part(value: str) -> str:
    if not value or "/" in value or "?" in value:
        raise ValueError(f"not a valid ID for a URL path: {value!r}")
    return value
