"""The one place a run reaches a terminal state.

Every change to a run goes through `change_run`; when a saved change ends the run (succeeded,
partially succeeded, failed, cancelled), `run_ended` is called: it releases the export lock and logs
one line. A run born `skipped` goes through `run_ended` as well. It is called once per run, except
when the process stopped between saving the end and releasing the lock: the watchdog then finds the
ended run still holding its export and calls it again.
"""
from __future__ import annotations

import logging
from typing import Callable

from .. import telemetry
from ..blobstate import utc_now
from . import finisher, lock
from .model import Run, RunStatus, Trigger
from .store import RunStore, Updated

log = logging.getLogger(__name__)


def run_ended(store: RunStore, run: Run) -> None:
    """Called once when a run has reached its terminal state: releases the export and sends the
    ExportRunFinished event. A cancelled or failed run first keeps what its chunks verified in the
    export's sync state (a finished run did so in its finishing step); a `delete` run that succeeded
    deletes its export."""
    if run.status in (RunStatus.CANCELLED, RunStatus.FAILED) and run.mode != finisher.PREVIEW:
        from .untag import save_unfinished  # the finishing step's module sends through the outbox

        try:
            save_unfinished(store, run)
        except Exception:  # noqa: BLE001 - the next run resends what the state misses; the run must end
            log.exception("run %s: the sync state could not keep its verified outcomes", run.run_id)
    if run.trigger is Trigger.DELETE:
        from .deletion import removal_ended

        removal_ended(store, run)  # succeeded: the export goes (before its lock: a crash here is seen again)
    lock.release(store, run.export_id, run.run_id)
    telemetry.emit(telemetry.RunFinished.from_run(run))
    log.info("run %s of export %s ended %s (%s): rows %d, sent %d, rejected %d, failed %d, untagged %d, "
             "rate limited %d, redriven %d%s", run.run_id, run.export_id, run.status.value, run.trigger.value,
             run.counts.rows, run.counts.sent, run.counts.rejected, run.counts.failed, run.untagged,
             run.rate_limited, run.redrives, f"; error: {run.error}" if run.error else "")


def change_run(store: RunStore, run_id: str, change: Callable[[Run], None]) -> Updated:
    """Apply `change` to the run (ETag loop); call `run_ended` if the change ended it."""
    updated = store.update_run(run_id, change)
    if updated.ended:
        run_ended(store, updated.run)
    return updated


def fail_run(store: RunStore, run_id: str, error: str) -> Run:
    now = utc_now()
    return change_run(store, run_id, lambda run: finisher.end(run, RunStatus.FAILED, error, now)).run


def cancel_run(store: RunStore, run_id: str, reason: str) -> Run:
    now = utc_now()

    def cancel(run: Run) -> None:
        error = f"{reason}; {finisher.unprocessed_rows(run)} planned rows were not processed"
        finisher.end(run, RunStatus.CANCELLED, error, now)

    return change_run(store, run_id, cancel).run
