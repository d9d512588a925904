"""The watchdog: every run ends.

A timer calls `watch_runs` every few minutes. It reads only the export locks (`active-runs/`, one
per export with a run in progress), so its cost grows with the runs in progress, not with history.
For each such run (each on its own: one broken run does not stop the others):

- past RUN_MAX_HOURS: the run fails with a clear error and the export is released;
- outbox entries older than a couple of minutes (their delivery died before sending them): sent;
- no progress for RUN_STALL_MINUTES (the run document and its steps' progress blobs unchanged):
  what the saved state says is missing is sent again (the plan message, or the saved plan recorded;
  the chunks of opened waves not yet counted; the untag waves pending), and the run counts a redrive;
- a lock whose run has ended, or whose run was never recorded (older than the lock's grace), is released;
- a run applying approved removals (it holds its export meanwhile): its step is sent again after
  RUN_STALL_MINUTES without progress, and fails after RUN_MAX_HOURS from the approval.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..blobstate import parse_utc
from ..settings import Settings
from . import approval, ending, finisher, lock, outbox, paths, planner
from .errors import RunNotFoundError
from .finisher import Verdict
from .messages import ApproveMessage, PlanMessage, UntagMessage
from .model import Run
from .store import RunStore

log = logging.getLogger(__name__)


@dataclass
class WatchReport:
    """What one watchdog pass did, by run id."""

    checked: int = 0
    failed: list[str] = field(default_factory=list)
    flushed: list[str] = field(default_factory=list)
    redriven: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)  # export ids whose lock was left behind
    errors: list[str] = field(default_factory=list)


def watch_runs(settings: Settings, now: datetime | None = None) -> WatchReport:
    """One watchdog pass over every run in progress (`now` only for tests)."""
    now = now or datetime.now(timezone.utc)
    store = RunStore(settings)
    store.ensure()
    policy = finisher.WatchPolicy.of(settings)
    report = WatchReport()
    me = f"watchdog-{secrets.token_hex(6)}"
    for item in store.list(paths.ACTIVE_PREFIX):
        export_id = lock.export_of(item.name)
        try:
            _watch(store, export_id, now, policy, me, report)
        except Exception as error:  # noqa: BLE001 - one run's trouble must not stop the others
            log.exception("watchdog: the run of export %s could not be checked", export_id)
            report.errors.append(f"{export_id}: {type(error).__name__}: {error}")
    if report.failed or report.flushed or report.redriven or report.released or report.errors:
        log.info("watchdog: %d runs checked; failed %s, flushed %s, redriven %s, locks released %s",
                 report.checked, report.failed, report.flushed, report.redriven, report.released)
    return report


def _watch(store: RunStore, export_id: str, now: datetime, policy: finisher.WatchPolicy, me: str,
           report: WatchReport) -> None:
    holder = lock.read(store, export_id)
    if holder is None:
        return
    try:
        run = store.get_run(holder.run_id)
    except RunNotFoundError:
        if not lock.holds(store, holder, now):
            lock.release_stale(store, holder)
            report.released.append(export_id)
        return
    report.checked += 1
    if run.applying_removals:  # an ended run applying approved removals holds its export meanwhile
        _watch_approval(store, run, now, policy, report)
        return
    if run.terminal:  # it ended, but its end was not seen through (the process stopped in between)
        ending.run_ended(store, run)
        report.released.append(export_id)
        return
    verdict = finisher.judge(run, now, parse_utc(run.updated_at or run.started_at), policy)
    if verdict is Verdict.REDRIVE:  # the run document is quiet; are its steps?
        verdict = finisher.judge(run, now, _last_activity(store, run), policy)
    if verdict is Verdict.FAIL:
        ending.fail_run(store, run.run_id, finisher.overdue_error(run, store.settings.run_max_hours))
        report.failed.append(run.run_id)
    elif verdict is Verdict.FLUSH:
        outbox.flush(store, run, by=None)
        report.flushed.append(run.run_id)
    elif verdict is Verdict.REDRIVE:
        sent = redrive(store, run, me)
        log.warning("watchdog: run %s made no progress for %s; %d messages sent again",
                    run.run_id, policy.stall, sent)
        report.redriven.append(run.run_id)


def _watch_approval(store: RunStore, run: Run, now: datetime, policy: finisher.WatchPolicy,
                    report: WatchReport) -> None:
    verdict = finisher.approval_verdict(run, now, _last_activity(store, run), policy)
    if verdict is Verdict.FAIL:
        approval.record(store, run, 0, f"applying the approved removals did not finish within RUN_MAX_HOURS "
                        f"({store.settings.run_max_hours} h) and was stopped")
        report.failed.append(run.run_id)
    elif verdict is Verdict.REDRIVE:
        store.send([ApproveMessage(run.run_id, approval.deadline(store.settings, run))])
        log.warning("watchdog: applying the approved removals of run %s made no progress for %s; sent again",
                    run.run_id, policy.stall)
        report.redriven.append(run.run_id)


def _last_activity(store: RunStore, run: Run) -> datetime:
    moments = [parse_utc(run.updated_at or run.started_at)]
    moments += [item.last_modified for item in store.list(paths.progress_prefix(run.run_id))]
    return max(moments)


def redrive(store: RunStore, run: Run, me: str) -> int:
    """Send again what the run's saved state says is missing; returns how many messages."""
    missing = finisher.missing(run)
    deadline = run.deadline(store.settings.run_max_hours)
    sent = 0
    if missing.plan:
        saved = store.load_plan(run.run_id)
        if saved is not None:  # planned and saved, but never recorded on the run
            planner.adopt(store, run.run_id, saved, me)
        else:  # planning again finishes the plan its parts began
            sent += store.send([PlanMessage(run.run_id, deadline)])
        sent += _send_chunks(store, run, missing.chunks, deadline)  # the chunks of those parts
    elif missing.nothing:
        outbox.settle(store, run.run_id, lambda r: None, me)  # whatever is due next
    else:
        sent += _send_chunks(store, run, missing.chunks, deadline)
        sent += store.send(UntagMessage(run.run_id, wave, deadline) for wave in missing.untag_waves)
    store.update_run(run.run_id, _count_redrive)
    return sent


def _send_chunks(store: RunStore, run: Run, seqs: tuple[int, ...], deadline: str) -> int:
    """Send the chunk messages of `seqs` again, from the plan (or, before it is whole, its parts)."""
    if not seqs:
        return 0
    plan = store.load_plan(run.run_id)
    if plan is not None:
        token, chunks = plan.token, [planned for wave in plan.waves for planned in wave]
    else:
        parts = store.load_parts(run.run_id)
        token, chunks = (parts[0].token if parts else ""), [planned for part in parts for planned in part.chunks]
    by_seq = {planned.seq: planned for planned in chunks}
    return store.send(outbox.chunk_message(run, by_seq[seq], deadline, token) for seq in seqs)


def _count_redrive(run: Run) -> None:
    run.redrives += 1
