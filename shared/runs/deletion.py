"""Deleting an export: what is kept for it goes with it, and on request its tags leave Omnisend first.

A plain delete (`delete_export`) cancels the export's run in progress (which keeps what its chunks
verified in the sync state), deletes the export's document, then everything kept for that export
alone (`forget_export`): its sync state, the schedule's claims of its due times and its run index.
Runs stay readable by their id.

`start_tag_removal` starts a run of trigger `delete` instead. Its plan reads no segment
(`removal_plan`): with no segment, the finishing step (shared/runs/untag.py) finds every tag of the
export's sync state retired and takes it off every contact the state says the export tagged, by
email, MAX_TAG_EMAILS a call, resumable, and ungated (the user asked for it). A same-named tag set
by hand on another contact stays, and contacts stay in Omnisend. The run holds the export lock like
any run, so meanwhile the export is neither run nor edited (`deleting_run`). When it succeeds,
`run_ended` calls `removal_ended`: the export and its state are deleted. A run that failed, was
cancelled or gave up part way (partially succeeded) leaves the export as it is, to try again.
"""
from __future__ import annotations

import logging
import time
from array import array
from typing import Callable, Sequence

from .. import documents, schedule, sync
from ..settings import Settings
from . import lifecycle, lock, paths
from .errors import RunNotFoundError
from .model import Plan, Run, RunStatus, Trigger
from .store import RunStore

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 1.0  # a delete run's progress is written at most this often


def delete_export(settings: Settings, export_id: str) -> None:
    """Cancel the export's run in progress, delete its document and everything kept for it."""
    # Runs first: queued chunks of a deleted export must do nothing further.
    lifecycle.cancel_export_runs(settings, export_id)
    _delete(RunStore(settings), export_id)


def forget_export(store: RunStore, export_id: str) -> None:
    """Delete what is kept for the export alone (its document is gone or going): the sync state, the
    schedule's claims and the run index. Repeatable."""
    sync.SyncStateStore(store.container).delete(export_id)
    schedule.delete_claims(store.container, export_id)
    for item in store.list(paths.index_prefix(export_id)):
        store.delete(item.name)


def start_tag_removal(settings: Settings, export: documents.Export) -> Run:
    """Start the run that takes every tag the export owns off its contacts, then deletes the export.
    RunInProgressError when the export has a run in progress."""
    return lifecycle.start_run(settings, export, Trigger.DELETE)


def deleting_run(settings: Settings, export_id: str) -> Run | None:
    """The export's `delete` run in progress, if it has one."""
    store = RunStore(settings)
    holder = lock.read(store, export_id)
    if holder is None:
        return None
    try:
        run = store.get_run(holder.run_id)
    except RunNotFoundError:
        return None
    return run if run.trigger is Trigger.DELETE and not run.terminal else None


def removal_plan(store: RunStore, run: Run, token: str, by: str) -> Plan:
    """The plan of a `delete` run: no segment, no row, the state's tags as the run's tag table."""
    found = sync.SyncStateStore(store.container).load_info(run.export_id)
    tags = found[0].tags if found else ()
    return Plan(token, by, (), 0, False, (), sync.SyncMode.INCREMENTAL.value, tuple(tags))


def removal_progress(store: RunStore, run: Run, calls: Sequence[tuple[str, list[str], array]]) -> Callable[[int], None]:
    """report(calls done) for the finishing step: a `delete` run shows how far it is (other runs: nothing)."""
    if run.trigger is not Trigger.DELETE:
        return lambda done: None
    sizes = [len(emails) for _, emails, _ in calls]
    total = sum(sizes)
    last = [float("-inf")]

    def report(done: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_SECONDS:
            return
        last[0] = now
        untagged = sum(sizes[:done])

        def change(current: Run) -> None:
            if not current.terminal:
                current.removals_planned = total
                current.removals_done = max(current.removals_done, untagged)

        store.update_run(run.run_id, change)

    return report


def removal_ended(store: RunStore, run: Run) -> None:
    """A `delete` run ended: once it succeeded, the export and what is kept for it are deleted."""
    if run.trigger is not Trigger.DELETE or run.status is not RunStatus.SUCCEEDED:
        return
    _delete(store, run.export_id)
    log.info("export %s deleted by run %s after %d tag removals", run.export_id, run.run_id, run.untagged)


def _delete(store: RunStore, export_id: str) -> None:
    try:
        documents.DocumentStore(store.settings).delete_export(export_id)
    except documents.DocumentNotFoundError:
        pass  # deleted at the same time by someone else: the outcome wanted
    forget_export(store, export_id)
