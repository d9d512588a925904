"""State kept as blobs: one read, one conditional write, one delete and one container check for the
whole app (run state, connections and exports, rate budgets), and the one UTC timestamp format.

The contract of every conditional write is the same: it returns the blob's new ETag, or raises
`ConflictError` when its condition failed (the blob exists already for a create-only write, or it
changed or vanished since it was read for an `if_match` write). Nothing returns False.

Every call passes through `io_call`, where a test can arm a probe that fails a chosen call or ends
the process right after it (the crash tests); in production no probe is installed. A probe is
installed for the current thread (context) only.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from . import blobhttp

JSON_CONTENT = "application/json"


# --------------------------------------------------------------------------- time


def utc_now() -> str:
    """Now as an ISO 8601 UTC timestamp with a `Z`: the format of every timestamp the app stores or shows."""
    return utc_text(datetime.now(timezone.utc))


def utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """A timestamp written by `utc_text` (or any ISO 8601 one with an offset) as an aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------- errors


class StateError(Exception):
    """Blob state that cannot be used as it is (the root of this module's errors)."""


class ConflictError(StateError):
    """A conditional write or delete lost: `reason` is "exists", "changed" or "missing"."""

    def __init__(self, name: str, reason: str) -> None:
        text = {"exists": "exists already", "changed": "was changed by someone else",
                "missing": "no longer exists"}[reason]
        super().__init__(f"blob {name!r} {text}")
        self.name = name
        self.reason = reason


class CorruptStateError(StateError):
    """A state blob that is not the JSON it should be; names the blob."""


# --------------------------------------------------------------------------- the probe


class Probe(Protocol):
    """Sees every state call: `before` may raise to fail the call, `after` to fail or end the
    process once the call has taken effect. `op` is e.g. "read", "write", "send"; `target` names
    the blob (`<container>/<name>`) or queue."""

    def before(self, op: str, target: str) -> None: ...

    def after(self, op: str, target: str) -> None: ...


_probe: ContextVar[Probe | None] = ContextVar("blobstate_probe", default=None)


def install_probe(probe: Probe | None) -> Probe | None:
    """Install `probe` for this thread (None removes it); returns the one it replaces."""
    previous = _probe.get()
    _probe.set(probe)
    return previous


@contextmanager
def io_call(op: str, target: str) -> Iterator[None]:
    """Wrap one storage or queue call (also used by the run engine around its queue and segment reads)."""
    probe = _probe.get()
    if probe is not None:
        probe.before(op, target)
    yield
    if probe is not None:
        probe.after(op, target)


# --------------------------------------------------------------------------- blobs


@dataclass(frozen=True)
class Stored:
    """A blob as read: its bytes and the ETag to make a conditional write against."""

    data: bytes
    etag: str

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CorruptStateError(f"blob {name!r} is not valid JSON: {error}") from None


@dataclass(frozen=True)
class Listed:
    name: str
    last_modified: datetime
    metadata: dict[str, str]


def _target(container: ContainerClient, name: str) -> str:
    return f"{container.container_name}/{name}"


def ensure_container(container: ContainerClient) -> None:
    with io_call("create-container", container.container_name):
        try:
            container.create_container()
        except ResourceExistsError:
            pass


def read(container: ContainerClient, name: str) -> Stored | None:
    """The blob's bytes and ETag, or None when it does not exist."""
    with io_call("read", _target(container, name)):
        try:
            got = blobhttp.for_container(container).get(name)
        except ResourceNotFoundError:
            return None
    return Stored(got.data, got.etag)


def read_json(container: ContainerClient, name: str) -> tuple[Any, str] | None:
    """The blob as JSON with its ETag, or None when it does not exist; CorruptStateError when not JSON."""
    found = read(container, name)
    return None if found is None else (found.json(name), found.etag)


def stream(container: ContainerClient, name: str) -> Iterator[bytes] | None:
    """The blob piece by piece (as the service sends it), or None when it does not exist."""
    with io_call("read", _target(container, name)):
        try:
            download = container.get_blob_client(name).download_blob()
        except ResourceNotFoundError:
            return None
    return download.chunks()


def write(container: ContainerClient, name: str, data: bytes | str, *, if_match: str | None = None,
          create_only: bool = False, content_type: str | None = None,
          metadata: dict[str, str] | None = None) -> str:
    """Write the blob and return its new ETag: unconditionally, only if absent (`create_only`), or
    only if unchanged since read (`if_match`). ConflictError when the condition failed."""
    if create_only and if_match:
        raise ValueError("a write is either create-only or if-match, not both")
    body = data.encode() if isinstance(data, str) else data
    with io_call("write", _target(container, name)):
        try:
            if len(body) > SINGLE_PUT_BYTES:
                return _staged_write(container, name, body, if_match, create_only, content_type, metadata)
            return blobhttp.for_container(container).put(name, body, if_match=if_match, create_only=create_only,
                                                         content_type=content_type, metadata=metadata)
        except ResourceExistsError:
            raise ConflictError(name, "exists") from None
        except ResourceModifiedError:
            raise ConflictError(name, "changed") from None
        except ResourceNotFoundError:
            if if_match:  # replaced a blob that was deleted since it was read
                raise ConflictError(name, "missing") from None
            raise


# Bodies up to this size go in one PUT (the SDK's own single-upload limit); larger ones through the
# SDK's staged blocks.
SINGLE_PUT_BYTES = 64 * 1024 * 1024


def _staged_write(container: ContainerClient, name: str, body: bytes, if_match: str | None, create_only: bool,
                  content_type: str | None, metadata: dict[str, str] | None) -> str:
    options: dict[str, Any] = {"content_settings": ContentSettings(content_type=content_type), "metadata": metadata,
                               "overwrite": not create_only}
    if if_match:
        options.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
    return container.get_blob_client(name).upload_blob(body, **options)["etag"]


def write_json(container: ContainerClient, name: str, value: Any, *, if_match: str | None = None,
               create_only: bool = False, metadata: dict[str, str] | None = None) -> str:
    data = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return write(container, name, data, if_match=if_match, create_only=create_only,
                 content_type=JSON_CONTENT, metadata=metadata)


def delete(container: ContainerClient, name: str, *, if_match: str | None = None) -> bool:
    """Delete the blob; False when it did not exist. ConflictError when it changed since read."""
    options = {"etag": if_match, "match_condition": MatchConditions.IfNotModified} if if_match else {}
    with io_call("delete", _target(container, name)):
        try:
            container.get_blob_client(name).delete_blob(**options)
            return True
        except ResourceNotFoundError:
            return False
        except ResourceModifiedError:
            raise ConflictError(name, "changed") from None


def list_blobs(container: ContainerClient, prefix: str, *, metadata: bool = False) -> list[Listed]:
    """Every blob under `prefix`, in name order (one listing, read whole)."""
    include = ["metadata"] if metadata else None
    with io_call("list", _target(container, prefix)):
        return [Listed(item.name, item.last_modified, dict(item.metadata or {}))
                for item in container.list_blobs(name_starts_with=prefix, include=include)]
