"""The lock on a connection's exports: saving an export checks its tags against the other exports on
its connection, then stores it, and two saves on one connection must not interleave there (both would
pass the check, and two exports would own the same tag).

`connection-locks/<connectionId>.json` in the state container names the save holding the lock and
until when. It is claimed like the export lock of runs (shared/runs/lock.py): a create-only write, or
a write If-Match over a lock whose holder let its time pass (it died); it is released by a delete
If-Match the ETag its holder wrote. A save waits for the lock up to WAIT_SECONDS, then gives up
(`ConnectionBusyError`); a holder that finds its time passed before it stores gives up too, since
another may have taken the lock over meanwhile.

Whether a lock is still held is a pure function (`held`) of the stored lock and the time.
"""
from __future__ import annotations

import random
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from azure.storage.blob import ContainerClient

from .. import blobstate

HOLD_SECONDS = 30.0  # a save that died lets go of its connection after this long
WAIT_SECONDS = 10.0  # how long a save waits for another save on its connection
_PAUSE_SECONDS = (0.02, 0.1)  # between two looks at a held lock (random, so waiters do not march in step)


class ConnectionBusyError(Exception):
    """The connection's lock could not be had (in time), or was held too long to store under it."""

    def __init__(self, connection_id: str, why: str) -> None:
        super().__init__(f"connection {connection_id!r}: {why}")
        self.connection_id = connection_id


def blob_name(connection_id: str) -> str:
    return f"connection-locks/{connection_id}.json"


def held(document: Any, now: datetime) -> bool:
    """Whether a stored lock still holds at `now`: it names an owner and a time not yet passed. A lock
    that cannot be read holds no one (it must never block saves for good)."""
    if not isinstance(document, dict) or not isinstance(document.get("owner"), str):
        return False
    try:
        until = blobstate.parse_utc(str(document.get("until")))
    except ValueError:
        return False
    return now < until


class Hold:
    """The lock as held by one save: `check()` before storing under it."""

    def __init__(self, connection_id: str, until: datetime, clock: Callable[[], datetime]) -> None:
        self.connection_id = connection_id
        self.until = until
        self._clock = clock

    def check(self) -> None:
        """ConnectionBusyError when the hold's time has passed: another save may have the lock now."""
        if self._clock() >= self.until:
            raise ConnectionBusyError(self.connection_id, "the save took longer than its hold on the connection")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _claim(state: ContainerClient, connection_id: str, owner: str, clock: Callable[[], datetime],
           wait_seconds: float) -> tuple[str, datetime]:
    """Take the lock: (the ETag written, until when it holds)."""
    name = blob_name(connection_id)
    deadline = time.monotonic() + wait_seconds
    while True:
        until = clock() + timedelta(seconds=HOLD_SECONDS)
        body = {"owner": owner, "until": blobstate.utc_text(until)}
        try:
            return blobstate.write_json(state, name, body, create_only=True), until
        except blobstate.ConflictError:
            pass
        found = blobstate.read(state, name)
        if found is None:
            continue  # released meanwhile: claim it
        if not held(_document(found, name), clock()):
            try:  # its holder died: take it over, unless someone else does first
                return blobstate.write_json(state, name, body, if_match=found.etag), until
            except blobstate.ConflictError:
                continue
        if time.monotonic() >= deadline:
            raise ConnectionBusyError(connection_id, "another change to its exports is being saved")
        time.sleep(random.uniform(*_PAUSE_SECONDS))


def _document(found: blobstate.Stored, name: str) -> Any:
    try:
        return found.json(name)
    except blobstate.CorruptStateError:
        return None  # holds no one (held)


@contextmanager
def locked(state: ContainerClient, connection_id: str, *, clock: Callable[[], datetime] = _now,
           wait_seconds: float | None = None) -> Iterator[Hold]:
    """Hold the connection's lock for the block (ConnectionBusyError when it cannot be had within
    `wait_seconds`, by default WAIT_SECONDS)."""
    owner = uuid.uuid4().hex
    etag, until = _claim(state, connection_id, owner, clock, WAIT_SECONDS if wait_seconds is None else wait_seconds)
    try:
        yield Hold(connection_id, until, clock)
    finally:
        try:
            blobstate.delete(state, blob_name(connection_id), if_match=etag)
        except blobstate.ConflictError:
            pass  # taken over after its time passed: the new holder's now
