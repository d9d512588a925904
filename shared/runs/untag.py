"""The finishing step of a run: contacts that left a segment lose the tag the export gave them, and
the export's sync state is replaced from what the run verified.

Leavers come from the sync state, not from listing Omnisend: a segment's tag is removed only from
contacts the state says this export tagged and that are not in the segment as read by this run (every
valid email of it, sent or not, so a row that failed to send never costs its contact the tag). A
contact the export never tagged keeps a same-named tag made by hand. A segment with no valid email
removes no tag: an empty input is far likelier a broken export or mapping than an empty segment.
Removals go by email, MAX_TAG_EMAILS a call; contacts stay in Omnisend (there is no delete).
The removal gate: a tag whose leavers are more than the export's maxRemovalPercent of the contacts
carrying it (members + leavers) keeps its removals held: not applied, the leavers keep the tag bit in
the next state, their email keys are saved beside the run (`paths.held`) and the run ends
partially succeeded with `removalsHeld`, until someone approves them (shared/runs/approval.py).
A run of no segment (a `delete` run, shared/runs/deletion.py) retires every tag of the state: each
carrier loses it.

The step is one message (`untag-0`), held by a claim whose progress counts the removal calls done, so
a redelivery resumes. The state is replaced last, in one conditional write; a state whose header names
this run was saved already (a crash after the write). A cancelled or failed run saves its chunks'
verified outcomes without removals (`save_unfinished`).
"""
from __future__ import annotations

import contextvars
import logging
from array import array
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

from .. import sync
from ..blobstate import utc_now
from ..omnisend import MAX_TAG_EMAILS, AuthenticationError, PermissionDeniedError, RateLimitedError
from ..settings import Settings
from . import clients, deletion, finisher, outbox, paths, results
from .errors import Deferred, RunFailure
from .messages import UntagMessage, may_defer
from .model import HeldRemoval, Run
from .store import Claim, RunStore

log = logging.getLogger(__name__)

_SAVE_ATTEMPTS = 5
LOG_READERS = 8  # change logs read at once (storage round trips, not CPU)


def removal_calls(plan: sync.RemovalPlan, prior: sync.SyncState) -> list[tuple[str, list[str], array]]:
    """(tag, emails, email keys) of every DELETE /contacts/tags call the plan applies, in a stable order (pure)."""
    calls = []
    for removal in plan.to_apply:
        emails = list(plan.emails(prior, removal))
        keys = plan.keys(prior, removal)
        for start in range(0, len(emails), MAX_TAG_EMAILS):
            calls.append((removal.tag, emails[start:start + MAX_TAG_EMAILS], keys[start:start + MAX_TAG_EMAILS]))
    return calls


def held_removals(plan: sync.RemovalPlan) -> list[HeldRemoval]:
    """What the run shows of the removals the gate held (pure)."""
    return [HeldRemoval(r.tag, r.leavers, r.carriers, r.members, r.percent, r.detail) for r in plan.held]


def untag_leavers(settings: Settings, store: RunStore, message: UntagMessage, me: str) -> None:
    run = store.get_run(message.run_id)
    wave = message.wave
    if run.terminal or wave not in (run.untag_pending or []):
        return
    claim = Claim(store, run.run_id, message.step, message.owner or me)
    progress = claim.acquire()
    state_store = sync.SyncStateStore(store.container)
    stored = state_store.load(run.export_id)
    prior = stored.state if stored else sync.SyncState.empty()
    if stored is not None and prior.info.run_id == run.run_id:  # saved before a crash: only the record is left
        record(store, run.run_id, wave, int(progress.get("untagged", 0)), progress.get("error"), me,
               [HeldRemoval.from_dict(held) for held in progress.get("held") or []])
        return
    members = _members(store, run)
    segment_tags = {name: run.export.tag_of(name) for name in run.segment_names}
    plan = sync.plan_removals(prior, segment_tags, members, max_removal_percent=run.export.max_removal_percent)
    calls = removal_calls(plan, prior)
    done = int(progress.get("calls", 0))
    error = progress.get("error")
    report = deletion.removal_progress(store, run, calls)  # a delete run shows its progress
    if done < len(calls) and error is None:
        report(done)
        client = clients.client_for(settings, clients.connection_of(settings, run))
        try:
            for index in range(done, len(calls)):
                if store.get_run(run.run_id).terminal:
                    return
                claim.keep_alive()
                tag, emails, _ = calls[index]
                client.remove_tags(emails, [tag])
                done = index + 1
                claim.save({"calls": done})
                report(done)
        except (AuthenticationError, PermissionDeniedError) as exc:
            raise RunFailure(f"Omnisend refused the connection's API key during the run: {exc}") from exc
        except RateLimitedError as exc:
            if may_defer(message, exc.retry_after):
                raise Deferred(exc.retry_after, f"Omnisend rate limit: {exc}", rate_limited=True) from exc
            error = f"removing the tag from leavers gave up waiting: {exc}"
    untagged = sum(len(emails) for _, emails, _ in calls[:done])
    held = held_removals(plan)
    claim.save({"calls": done, "untagged": untagged, "error": error, "held": [h.to_dict() for h in held]})
    for index, removal in enumerate(plan.held):  # before the state: an approval reads them once the run ended
        store.write(paths.held(run.run_id, index), plan.keys(prior, removal).tobytes())
    removed = [_untag_changes(run, tag, keys) for tag, _, keys in calls[:done]]
    forget = (sync.ContactChange(prior.keys[i], forget=True) for i in plan.departed)
    _save(store, state_store, run, stored, [*_chunk_logs(store, run), *removed, forget])
    if untagged:
        log.info("run %s: %d contacts left their segments and lost the export's tag", run.run_id, untagged)
    if held:
        log.warning("run %s: tag removals held by the removal gate: %s", run.run_id, plan.held_reason)
    record(store, run.run_id, wave, untagged, error, me, held)


def save_unfinished(store: RunStore, run: Run) -> None:
    """A cancelled or failed run: what its chunks verified goes into the state (no removals); rows
    never reached keep their previous state, so the next run sends them.

    Called when the run ends, and again by every chunk counted after that (a delivery that was
    sending when the run was cancelled: its requests landed, so the state must know them, or a tag it
    set would never be removed). Each call merges the change logs of every chunk with a result; the
    changes add fingerprints and tags only, so merging them again is harmless. On a state a later run
    saved meanwhile they are added under that run's header."""
    if not run.planned and not run.early_chunks:
        return
    state_store = sync.SyncStateStore(store.container)
    for _ in range(_SAVE_ATTEMPTS):
        stored = state_store.load(run.export_id)
        prior = stored.state if stored else sync.SyncState.empty()
        run_id, written_at = run.run_id, utc_now()
        if prior.info.run_id != run.run_id and prior.info.written_at > run.started_at:
            run_id, written_at = prior.info.run_id, prior.info.written_at  # a later run's state
        tags = sync.run_tag_table(prior.tags, run.sync_tags)
        logs = _chunk_logs(store, run, sorted(set(run.opened_chunks) | set(run.chunks_done)))
        nxt = sync.next_state(prior, tags, sync.merge_changes(*logs), run_id=run_id, written_at=written_at)
        try:
            state_store.save(run.export_id, nxt, etag=stored.etag if stored else None)
            return
        except sync.StateConflictError:
            continue  # another chunk (or a later run) saved meanwhile: merge onto that
    raise sync.StateConflictError(f"run {run.run_id}: the sync state kept changing; its outcomes were not saved")


def _save(store: RunStore, state_store: sync.SyncStateStore, run: Run, stored: sync.StoredState | None,
          logs: list[Iterable[sync.ContactChange]], *, full: bool | None = None) -> None:
    prior = stored.state if stored else sync.SyncState.empty()
    now = utc_now()
    full = run.mode == sync.SyncMode.FULL.value if full is None else full
    tags = sync.run_tag_table(prior.tags, run.sync_tags)
    nxt = sync.next_state(prior, tags, sync.merge_changes(*logs), run_id=run.run_id, written_at=now,
                          full_at=now if full else "")
    try:
        state_store.save(run.export_id, nxt, etag=stored.etag if stored else None)
    except sync.StateConflictError:
        found = state_store.load_info(run.export_id)
        if found is None or found[0].run_id != run.run_id:
            raise


def _chunk_logs(store: RunStore, run: Run, seqs: Iterable[int] | None = None) -> list[Iterator[sync.ContactChange]]:
    """The change logs of the chunks `seqs` (default: the counted ones) that have a result. One listing
    of the results names their logs' tokens, then one read a chunk, 200 for a 200,000-profile run:
    LOG_READERS at a time (each in its own copy of the caller's context, so a storage probe sees them),
    kept in chunk order."""
    seqs = sorted(set(run.chunks_done)) if seqs is None else list(seqs)
    tokens = results.change_tokens(store, run.run_id)

    def change_log(seq: int) -> bytes | None:
        if seq not in tokens:
            return None
        token = tokens[seq]
        if token is None:  # a result of before its metadata named the log
            result = results.read(store, run.run_id, seq)
            return results.read_changes(store, run.run_id, result) if result else None
        return results.read_change_log(store, run.run_id, seq, token)

    with ThreadPoolExecutor(max_workers=LOG_READERS, thread_name_prefix="change-logs") as pool:
        found = [pool.submit(contextvars.copy_context().run, change_log, seq) for seq in seqs]
        return [sync.decode_changes(data) for data in (future.result() for future in found) if data]


def _untag_changes(run: Run, tag: str, keys: array) -> list[sync.ContactChange]:
    bit = 1 << run.sync_tags.index(tag) if tag in run.sync_tags else 0
    return [sync.ContactChange(key, untagged=bit) for key in sorted(keys)] if bit else []


def _members(store: RunStore, run: Run) -> dict[str, array]:
    members = {}
    for wave, segment in enumerate(run.segment_names):
        found = store.read(paths.members(run.run_id, run.plan_token, wave))
        if found is None:
            raise LookupError(f"run {run.run_id}: the members of segment {segment!r} are missing")
        keys = array("Q")
        keys.frombytes(found.data)
        members[segment] = keys
    return members


def record(store: RunStore, run_id: str, wave: int, untagged: int, error: str | None, me: str,
           held: list[HeldRemoval] | None = None) -> None:
    outbox.settle(store, run_id, lambda run: finisher.untag_done(run, wave, untagged, error, held), me)
