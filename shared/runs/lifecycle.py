"""Starting, reading, listing and cancelling runs; the schedule and upload triggers."""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta, timezone
from typing import Iterator

from .. import blobstate, documents, schedule, segments, storage, sync
from ..blobstate import utc_now
from ..settings import Settings
from . import ending, finisher, lock, outbox, paths, results
from .errors import RunInProgressError, RunNotFoundError
from .model import Due, ExportSnapshot, Run, RunStatus, StepKind, Trigger
from .store import RunStore

log = logging.getLogger(__name__)

# The timer's very first look (no cursor yet) covers this much before now, not everything since an
# export was saved: an installation that had the old one-schedule timer ran last night's exports already.
FIRST_LOOK_BACK = timedelta(minutes=10)


def _new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def start_run(settings: Settings, export: documents.Export, trigger: str | Trigger, *,
              run_id: str | None = None, mode: str | sync.SyncMode | None = None) -> Run:
    """Record a run of `export` and queue its planning. The export's lock is taken before the run is
    recorded: of two starts at once, one runs; the other raises RunInProgressError (manual, delete) or is
    recorded as `skipped`, saying why (schedule, upload).

    `run_id` (scheduled runs: derived from the export and its due time) makes the start repeatable:
    two starts of the same id hold the lock together and record the run once; the later one returns
    the run the earlier one recorded.

    `mode` (incremental, full or preview) is what the starter asks for; None lets the planner decide
    (`shared.sync.resolve_mode`: full when the export has no state or, for a scheduled run, no full run
    within its `fullResyncDays`; else incremental)."""
    trigger = Trigger(trigger)
    requested = None if mode is None else sync.SyncMode(mode).value
    store = RunStore(settings)
    store.ensure()
    me = f"start-{secrets.token_hex(6)}"
    now = utc_now()
    run = Run(run_id=run_id or _new_run_id(), export_id=export.id, trigger=trigger, export=ExportSnapshot.of(export),
              started_at=now, requested_mode=requested)
    holder = lock.claim(store, export.id, run.run_id)
    if holder:
        if trigger in (Trigger.MANUAL, Trigger.DELETE):
            raise RunInProgressError(holder)
        finisher.end(run, RunStatus.SKIPPED, f"skipped: run {holder} of this export is still in progress", now)
    else:
        run.outbox.append(Due(StepKind.PLAN, by=me, at=now))
    try:
        store.create_run(run)
    except Exception as error:
        if run_id is not None and isinstance(error, blobstate.ConflictError):
            return store.get_run(run_id)  # recorded by another start of this same run, which keeps the lock
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


def preview_report(settings: Settings, run_id: str) -> dict | None:
    """A preview run's report (its API form): None while it is being planned, or for another mode."""
    store = RunStore(settings)
    run = store.get_run(run_id)  # RunNotFoundError
    if not run.planned or run.mode != sync.SyncMode.PREVIEW.value:
        return None
    found = store.read_json(paths.preview(run_id, run.plan_token))
    return None if found is None else found[0]


def start_scheduled_runs(settings: Settings, now: datetime | None = None) -> list[Run]:
    """The schedule timer (every 5 minutes): a run of every export that came due since the timer last
    looked, exactly once per due time, each export on its own (a failing one is logged).

    Per export with "schedule" in `runOn`: its due time is the latest time of its schedule (its own,
    or the app's EXPORT_SCHEDULE) in (window start, now], where the window starts at the later of the
    cursor and the export's last save, so a new export never runs for times before it existed and a
    timer that was down starts it once. The due time is claimed create-only (of two instances, one
    starts it) and then the cursor is advanced (If-Match: never backwards).

    The gap between the claim and the run being recorded (the process dies in between, and the cursor
    moves past the due time, e.g. advanced by the other instance) is closed by the run id: it is
    derived from (export, due time) (`schedule.scheduled_run_id`), so every tick also checks the
    export's latest due time at or before now: claimed but no run under that id means its start
    died, and this tick starts it under the same id. Two such repairs at once record it once
    (create-only run document; `start_run` with a `run_id`). A due time superseded by a later one is
    not repaired: the later one runs, as after any missed window.
    """
    # `now` is taken before the exports are listed: an export saved after the listing has an
    # updatedAt later than `now`, so the next tick's window (from the cursor, i.e. `now`) covers it.
    now = now or datetime.now(timezone.utc)
    store = RunStore(settings)
    store.ensure()
    cursor = schedule.read_cursor(store.container)
    last_checked = cursor.last_checked or now - FIRST_LOOK_BACK
    app = schedule.app_schedule(settings.export_schedule)
    errors: list[documents.DocumentError] = []
    exports = documents.DocumentStore(settings).list_exports(errors=errors)
    for error in errors:
        log.error("scheduled refresh: an export cannot be read and is not run: %s", error)
    started = []
    for export in exports:
        try:
            run = _start_if_due(settings, store, export, app, last_checked, now)
        except Exception:  # noqa: BLE001 - one broken export must not stop the others
            log.exception("schedule start of export %s failed; the other exports go on", export.id)
            continue
        if run is not None:
            started.append(run)
    schedule.advance_cursor(store.container, cursor, now)
    return started


def _start_if_due(settings: Settings, store: RunStore, export: documents.Export, app: schedule.Schedule,
                  last_checked: datetime, now: datetime) -> Run | None:
    chosen = schedule.schedule_of(export, app)
    if chosen is None:
        return None
    due_at = schedule.due(chosen, schedule.window_start(export, last_checked), now)
    if due_at is not None:
        if not schedule.claim_due_run(store.container, export.id, due_at, now=now):
            return None  # another instance claimed it and starts it (else a later tick repairs it, below)
        return start_run(settings, export, Trigger.SCHEDULE, run_id=schedule.scheduled_run_id(export.id, due_at))
    latest = schedule.latest_due(chosen, now)
    if latest is None or latest <= schedule.saved_at(export):
        return None
    run_id = schedule.scheduled_run_id(export.id, latest)
    try:
        store.get_run(run_id)
        return None  # the usual case: started when it came due
    except RunNotFoundError:
        pass
    if store.read(schedule.claim_blob_name(export.id, latest)) is None:
        return None  # never claimed (e.g. EXPORT_SCHEDULE changed): not a due time this timer missed
    log.warning("export %s: the start of its run due at %s died after its claim; starting it now", export.id, latest)
    return start_run(settings, export, Trigger.SCHEDULE, run_id=run_id)


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
