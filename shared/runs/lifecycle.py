"""Starting, reading, listing and cancelling runs; the schedule and upload triggers."""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone
from typing import Iterator

from .. import documents, segments, storage
from ..blobstate import utc_now
from ..settings import Settings
from . import ending, finisher, lock, outbox, paths, results
from .errors import RunInProgressError, RunNotFoundError
from .model import Due, ExportSnapshot, Run, RunStatus, StepKind, Trigger
from .store import RunStore

log = logging.getLogger(__name__)


def _new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def start_run(settings: Settings, export: documents.Export, trigger: str | Trigger) -> Run:
    """Record a run of `export` and queue its planning. The export's lock is taken before the run is
    recorded: of two starts at once, one runs; the other raises RunInProgressError (manual) or is
    recorded as `skipped`, saying why (schedule, upload)."""
    trigger = Trigger(trigger)
    store = RunStore(settings)
    store.ensure()
    me = f"start-{secrets.token_hex(6)}"
    now = utc_now()
    run = Run(run_id=_new_run_id(), export_id=export.id, trigger=trigger, export=ExportSnapshot.of(export),
              started_at=now)
    holder = lock.claim(store, export.id, run.run_id)
    if holder:
        if trigger is Trigger.MANUAL:
            raise RunInProgressError(holder)
        finisher.end(run, RunStatus.SKIPPED, f"skipped: run {holder} of this export is still in progress", now)
    else:
        run.outbox.append(Due(StepKind.PLAN, by=me, at=now))
    try:
        store.create_run(run)
    except Exception:
        if not holder:
            lock.release(store, export.id, run.run_id)
        raise
    store.write(paths.index_entry(export.id, run.run_id), b"")
    log.info("run %s of export %s: %s (%s)", run.run_id, export.id, run.status.value, trigger.value)
    if run.terminal:
        ending.run_ended(store, run)
        return run
    try:
        outbox.flush(store, run, by=me)
    except Exception:  # noqa: BLE001 - the run is recorded; the watchdog sends what is left
        log.warning("run %s: its plan message could not be queued yet; the watchdog will send it",
                    run.run_id, exc_info=True)
    return run


def get_run(settings: Settings, run_id: str) -> Run:
    return RunStore(settings).get_run(run_id)


def list_runs(settings: Settings, export_id: str, limit: int = 50) -> list[Run]:
    """The export's runs, newest first."""
    store = RunStore(settings)
    found = []
    for item in store.list(paths.index_prefix(export_id)):
        try:
            found.append(store.get_run(paths.run_of_index_entry(item.name)))
        except RunNotFoundError:
            continue
        if len(found) >= limit:
            break
    return found


def cancel_run(settings: Settings, run_id: str, reason: str = "cancelled by a user") -> Run:
    return ending.cancel_run(RunStore(settings), run_id, reason)


def cancel_export_runs(settings: Settings, export_id: str) -> None:
    store = RunStore(settings)
    holder = lock.read(store, export_id)
    if holder is None:
        return
    try:
        ending.cancel_run(store, holder.run_id, "cancelled: the export was deleted")
    except RunNotFoundError:
        lock.release(store, export_id, holder.run_id)


def iter_rejects_csv(settings: Settings, run_id: str) -> Iterator[bytes]:
    """Every rejected and failed row of the run as CSV, header once, chunk by chunk from storage."""
    store = RunStore(settings)
    store.get_run(run_id)  # RunNotFoundError before the first piece
    return results.iter_rejects_csv(store, run_id)


def rejects_csv(settings: Settings, run_id: str) -> bytes:
    return b"".join(iter_rejects_csv(settings, run_id))


def start_scheduled_runs(settings: Settings) -> list[Run]:
    """A run of every export scheduled to run; each export on its own (a failing one is logged)."""
    errors: list[documents.DocumentError] = []
    exports = documents.DocumentStore(settings).list_exports(errors=errors)
    for error in errors:
        log.error("scheduled refresh: an export cannot be read and is not run: %s", error)
    return _start_each(settings, [e for e in exports if "schedule" in e.run_on], Trigger.SCHEDULE)


def start_runs_for_upload(settings: Settings, blob_path: str) -> list[Run]:
    """A rewritten model.json or a new plain CSV starts the exports of the segments it affects."""
    container = storage.container(settings, settings.segments_container)
    affected = set(segments.segments_affected_by_blob(container, blob_path))
    if not affected:
        return []
    errors: list[documents.DocumentError] = []
    exports = documents.DocumentStore(settings).list_exports(errors=errors)
    for error in errors:
        log.error("upload of %s: an export cannot be read and is not run: %s", blob_path, error)
    chosen = [e for e in exports if "upload" in e.run_on and affected.intersection(e.segments)]
    return _start_each(settings, chosen, Trigger.UPLOAD)


def _start_each(settings: Settings, exports: list[documents.Export], trigger: Trigger) -> list[Run]:
    started = []
    for export in exports:
        try:
            started.append(start_run(settings, export, trigger))
        except Exception:  # noqa: BLE001 - one broken export must not stop the others
            log.exception("%s start of export %s failed; the other exports go on", trigger.value, export.id)
    return started
