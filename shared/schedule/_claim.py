"""Exactly once per due time: claims and the timer's cursor, as small blobs in the state container.

The only I/O of the package. `claim_due_run` creates `schedule/claims/<export id>/<due>.json` with
`If-None-Match: *`: of two timer instances that decide the same export is due at the same time,
one creates the blob and starts the run, the other gets False and does nothing. Claims are kept
(a storage lifecycle rule on the `schedule/claims/` prefix can delete old ones); deleting an export
deletes its claims (`delete_claims`).

The cursor `schedule/last-checked.json` is when the timer last looked; it is advanced with
`If-Match` so a slower instance never moves it back. A lost cursor update only makes the next
look cover a longer window, which is harmless: due() picks the latest due time and the claim
turns away a time already started.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from ..documents import is_valid_id

CLAIMS_PREFIX = "schedule/claims/"
CURSOR_BLOB = "schedule/last-checked.json"
_JSON = ContentSettings(content_type="application/json")


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise TypeError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(timezone.utc)


def claim_blob_name(export_id: str, due_at: datetime) -> str:
    if not isinstance(export_id, str) or not is_valid_id(export_id):
        raise ValueError(f"export id {export_id!r} is not a valid id")
    return f"{CLAIMS_PREFIX}{export_id}/{_utc(due_at, 'due_at'):%Y%m%dT%H%M%SZ}.json"


def claim_due_run(container: ContainerClient, export_id: str, due_at: datetime, *, now: datetime | None = None,
                  claimed_by: str = "") -> bool:
    """True for the one caller that claims (export, due time) first; False for every later one."""
    name = claim_blob_name(export_id, due_at)
    body = {"exportId": export_id, "dueAt": _iso(due_at), "claimedAt": _iso(now or datetime.now(timezone.utc))}
    if claimed_by:
        body["claimedBy"] = claimed_by
    try:
        container.upload_blob(name, json.dumps(body).encode(), overwrite=False, content_settings=_JSON)
    except ResourceExistsError:
        return False
    return True


def delete_claims(container: ContainerClient, export_id: str) -> int:
    """Delete the claims of an export's due times (it was deleted); returns how many there were."""
    prefix = claim_blob_name(export_id, datetime(2000, 1, 1, tzinfo=timezone.utc)).rsplit("/", 1)[0] + "/"
    deleted = 0
    for item in container.list_blobs(name_starts_with=prefix):
        try:
            container.delete_blob(item.name)
        except ResourceNotFoundError:
            continue
        deleted += 1
    return deleted


@dataclass(frozen=True)
class Cursor:
    """When the timer last looked (None: never), with the ETag to advance it conditionally."""

    last_checked: datetime | None
    etag: str | None


def read_cursor(container: ContainerClient) -> Cursor:
    try:
        download = container.download_blob(CURSOR_BLOB)
    except ResourceNotFoundError:
        return Cursor(None, None)
    data = json.loads(download.readall())
    return Cursor(datetime.fromisoformat(data["lastChecked"].replace("Z", "+00:00")), download.properties.etag)


def advance_cursor(container: ContainerClient, cursor: Cursor, now: datetime) -> bool:
    """Set the cursor to `now` if nobody moved it since `cursor` was read; False when someone did
    (or when `now` is not later than it)."""
    now = _utc(now, "now")
    if cursor.last_checked is not None and now <= cursor.last_checked:
        return False
    body = json.dumps({"lastChecked": _iso(now)}).encode()
    try:
        if cursor.etag is None:
            container.upload_blob(CURSOR_BLOB, body, overwrite=False, content_settings=_JSON)
        else:
            container.upload_blob(CURSOR_BLOB, body, overwrite=True, content_settings=_JSON,
                                  etag=cursor.etag, match_condition=MatchConditions.IfNotModified)
    except (ResourceExistsError, ResourceModifiedError):
        return False
    return True
