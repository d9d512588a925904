"""Approving the removals a run's removal gate held (POST /runs/{runId}/approve-removals).

`approve_removals` records who approved (the run's `removalsApproved`, status `applying`), takes the
export's lock for the run (a run applying an approval holds its export: no other run starts, see
`lock.holds`), checks that the export's sync state is still the one the run left (a later run decided
its removals again), and queues the step `approve`. Any refusal after the approval was recorded
withdraws it.

The step (`apply_approved`) takes the tag off the held contacts that still carry it per the current
state (`approval_calls`, pure), MAX_TAG_EMAILS a call, under a claim whose progress counts the calls
done, so a redelivery resumes. Before the state is replaced it saves the ETag it read the state with;
a redelivery that finds the state changed since (and still naming the run) knows the write happened
and only records. The state is replaced in one conditional write with those tag bits cleared; then
the run records `removalsApproved` (applied, with how many contacts lost a tag) and the lock is
released. The watchdog re-sends a stalled step and fails one still going after RUN_MAX_HOURS.
"""
from __future__ import annotations

import logging
from array import array
from datetime import timedelta
from typing import Sequence

from .. import sync
from ..blobstate import parse_utc, utc_now, utc_text
from ..omnisend import MAX_TAG_EMAILS, AuthenticationError, PermissionDeniedError, RateLimitedError
from ..settings import Settings
from . import clients, finisher, lock, paths
from .errors import Deferred, RunError, RunFailure
from .messages import ApproveMessage, may_defer
from .model import Run
from .store import Claim, RunStore

log = logging.getLogger(__name__)


class ApprovalRefused(RunError):
    """The held removals cannot be approved now: `code` says why (the API's 409 problem code)."""

    def __init__(self, refusal: finisher.Refusal) -> None:
        super().__init__(refusal.detail)
        self.code = refusal.code
        self.detail = refusal.detail
        self.active_run = refusal.active_run


def approval_calls(state: sync.SyncState, held: Sequence[tuple[str, array]]) -> list[tuple[str, list[str], array]]:
    """(tag, emails, keys) of every DELETE /contacts/tags call an approval makes: for each held tag, the
    held contacts that still carry it per `state`, in key order, MAX_TAG_EMAILS a call (pure)."""
    calls = []
    for tag, keys in held:
        bit = state.tag_bit(tag)
        if not bit:
            continue
        positions = sorted(i for i in map(state.find, keys) if i >= 0 and state.masks[i] & bit)
        emails = list(state.emails_at(positions))
        found = array("Q", map(state.keys.__getitem__, positions))
        for start in range(0, len(emails), MAX_TAG_EMAILS):
            calls.append((tag, emails[start:start + MAX_TAG_EMAILS], found[start:start + MAX_TAG_EMAILS]))
    return calls


def approve_removals(settings: Settings, run_id: str, by: str) -> Run:
    """Approve the run's held removals and queue applying them; ApprovalRefused says why not."""
    store = RunStore(settings)
    now = utc_now()
    outcome: dict = {}

    def mark(run: Run) -> None:
        outcome["previous"] = run.removals_approved
        outcome["refusal"] = finisher.approve(run, by, now)

    run = store.update_run(run_id, mark).run
    if outcome["refusal"] is not None:
        raise ApprovalRefused(outcome["refusal"])
    approval = run.removals_approved
    holder = lock.claim(store, run.export_id, run.run_id)
    refusal = finisher.active_refusal(run, holder) if holder else None
    if refusal is None:
        info = sync.SyncStateStore(store.container).load_info(run.export_id)
        refusal = finisher.state_refusal(run, info[0].run_id if info else None)
        if refusal is not None:
            lock.release(store, run.export_id, run.run_id)
    if refusal is not None:
        store.update_run(run_id, lambda current: finisher.withdraw(current, approval, outcome["previous"]))
        raise ApprovalRefused(refusal)
    log.info("run %s: held tag removals approved by %s", run_id, by)
    try:
        store.send([ApproveMessage(run_id, deadline(settings, run))])
    except Exception:  # noqa: BLE001 - the approval is recorded and holds the lock: the watchdog sends it
        log.warning("run %s: applying the approval could not be queued yet; the watchdog will send it", run_id,
                    exc_info=True)
    return run


def deadline(settings: Settings, run: Run) -> str:
    at = run.removals_approved.at if run.removals_approved else run.started_at
    return utc_text(parse_utc(at) + timedelta(hours=settings.run_max_hours))


def apply_approved(settings: Settings, store: RunStore, message: ApproveMessage, me: str) -> None:
    run = store.get_run(message.run_id)
    if not run.applying_removals:
        return
    approval = run.removals_approved
    claim = Claim(store, run.run_id, paths.APPROVE_STEP, message.owner or me)
    progress = claim.acquire()
    if progress.get("approval") != approval.at:  # an earlier, failed approval's progress
        progress = {}
    state_store = sync.SyncStateStore(store.container)
    stored = state_store.load(run.export_id)
    if stored is None or stored.state.info.run_id != run.run_id:
        refusal = finisher.state_refusal(run, stored.state.info.run_id if stored else None)
        record(store, run, 0, refusal.detail)
        return
    if progress.get("final") and progress.get("priorEtag") != stored.etag:  # replaced before a crash
        record(store, run, int(progress.get("removed", 0)), progress.get("error"))
        return
    calls = approval_calls(stored.state, _held_keys(store, run))
    done = int(progress.get("calls", 0))
    error = progress.get("error")
    if done < len(calls) and error is None:
        client = clients.client_for(settings, clients.connection_of(settings, run))
        try:
            for index in range(done, len(calls)):
                if not store.get_run(run.run_id).applying_removals:
                    return
                claim.keep_alive()
                tag, emails, _ = calls[index]
                client.remove_tags(emails, [tag])
                done = index + 1
                claim.save({"approval": approval.at, "calls": done})
        except (AuthenticationError, PermissionDeniedError) as exc:
            error = f"Omnisend refused the connection's API key: {exc}"
        except RateLimitedError as exc:
            if may_defer(message, exc.retry_after):
                raise Deferred(exc.retry_after, f"Omnisend rate limit: {exc}", rate_limited=True) from exc
            error = f"removing the held tags gave up waiting: {exc}"
        except RunFailure as exc:
            error = str(exc)
    removed = sum(len(emails) for _, emails, _ in calls[:done])
    claim.save({"approval": approval.at, "calls": done, "removed": removed, "error": error, "final": True,
                "priorEtag": stored.etag})
    if done:
        prior = stored.state
        changes = [[sync.ContactChange(key, untagged=prior.tag_bit(tag)) for key in keys]
                   for tag, _, keys in calls[:done]]
        nxt = sync.next_state(prior, prior.tags, sync.merge_changes(*changes), run_id=run.run_id,
                              written_at=utc_now())
        state_store.save(run.export_id, nxt, etag=stored.etag)  # a conflict: the redelivery looks again
    log.info("run %s: %d contacts lost a held tag on approval by %s", run.run_id, removed, approval.by)
    record(store, run, removed, error)


def _held_keys(store: RunStore, run: Run) -> list[tuple[str, array]]:
    held = []
    for index, removal in enumerate(run.removals_held):
        found = store.read(paths.held(run.run_id, index))
        if found is None:
            raise LookupError(f"run {run.run_id}: the held removals of tag {removal.tag!r} are missing")
        keys = array("Q")
        keys.frombytes(found.data)
        held.append((removal.tag, keys))
    return held


def record(store: RunStore, run: Run, removed: int, error: str | None) -> None:
    """Applying the approval ended (applied, or failed with `error`): record it and release the export."""
    now = utc_now()
    store.update_run(run.run_id, lambda current: finisher.approval_done(current, removed, error, now))
    lock.release(store, run.export_id, run.run_id)
