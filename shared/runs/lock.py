"""The export lock: at most one run of an export in progress.

`active-runs/<exportId>.json` names the run holding the export. It is claimed (create-only, or
If-Match over a lock whose run has ended) *before* the run is recorded, so of two starts at the same
moment exactly one holds the lock. A lock naming a run not recorded yet is held for LOCK_GRACE (its
start is under way); after that it is stale. The lock files are also the index of active runs that
the watchdog reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .. import blobstate
from . import paths
from .errors import RunNotFoundError
from .store import RunStore

LOCK_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class Holder:
    export_id: str
    run_id: str
    claimed_at: str
    etag: str


def read(store: RunStore, export_id: str) -> Holder | None:
    found = store.read_json(paths.active(export_id))
    if found is None:
        return None
    document, etag = found
    if not isinstance(document, dict) or not isinstance(document.get("runId"), str):
        raise blobstate.CorruptStateError(f"blob {paths.active(export_id)!r} does not name a run")
    return Holder(export_id, document["runId"], str(document.get("claimedAt") or "1970-01-01T00:00:00Z"), etag)


def holds(store: RunStore, holder: Holder, now: datetime | None = None) -> bool:
    """Whether the lock's run is still in progress (or still being started, or applying approved removals)."""
    try:
        run = store.get_run(holder.run_id)
        return not run.terminal or run.applying_removals
    except RunNotFoundError:
        now = now or datetime.now(timezone.utc)
        return now - blobstate.parse_utc(holder.claimed_at) < LOCK_GRACE


def claim(store: RunStore, export_id: str, run_id: str) -> str | None:
    """Make `run_id` the export's run in progress; return the id of the run holding it instead."""
    name = paths.active(export_id)
    body = {"runId": run_id, "claimedAt": blobstate.utc_now()}
    while True:
        try:
            store.write_json(name, body, create_only=True)
            return None
        except blobstate.ConflictError:
            pass
        holder = read(store, export_id)
        if holder is None:
            continue  # released meanwhile
        if holder.run_id == run_id:
            return None
        if holds(store, holder):
            return holder.run_id
        try:
            store.write_json(name, body, if_match=holder.etag)
            return None
        except blobstate.ConflictError:
            continue  # someone else took it over first: look again


def release(store: RunStore, export_id: str, run_id: str) -> None:
    """Release the lock if `run_id` holds it."""
    holder = read(store, export_id)
    if holder is not None and holder.run_id == run_id:
        try:
            store.delete(paths.active(export_id), if_match=holder.etag)
        except blobstate.ConflictError:
            pass  # claimed by another run meanwhile


def release_stale(store: RunStore, holder: Holder) -> None:
    try:
        store.delete(paths.active(holder.export_id), if_match=holder.etag)
    except blobstate.ConflictError:
        pass


def export_of(name: str) -> str:
    return name.rsplit("/", 1)[1].removesuffix(".json")
