"""From decided steps to queue messages: the run's outbox.

A step's change and what it makes due are saved on the run in one write (the outbox); the messages
are sent after, and then taken off the run. A delivery that dies in between leaves them on record:
its redelivery sends them (it finds entries it decided), and the watchdog sends entries that look
abandoned. A message sent twice is harmless (results are counted once, chunks are claimed).
"""
from __future__ import annotations

import logging
from typing import Callable

from ..blobstate import utc_now
from . import ending, finisher, paths, results
from .messages import ChunkMessage, Message, PlanMessage, UntagMessage
from .model import Due, Plan, PlannedChunk, Run, StepKind
from .store import RunStore

log = logging.getLogger(__name__)


def chunk_message(run: Run, planned: PlannedChunk, deadline: str) -> ChunkMessage:
    return ChunkMessage(run.run_id, planned.seq, planned.wave, planned.chunk, deadline,
                        run.plan_token if planned.has_notes else None)


def messages_for(store: RunStore, run: Run, due: Due, plan: Plan | None) -> list[Message]:
    deadline = run.deadline(store.settings.run_max_hours)
    if due.kind is StepKind.PLAN:
        return [PlanMessage(run.run_id, deadline)]
    if due.kind is StepKind.UNTAG:
        return [UntagMessage(run.run_id, wave, deadline) for wave in range(due.start, due.stop)]
    if plan is None:
        raise LookupError(f"run {run.run_id} has waves to open but no plan")
    found: list[Message] = []
    for wave in range(due.start, due.stop):
        if plan.sequential and wave > 0:
            # Before a later segment's tag-only rows go out: which emails did earlier waves not send?
            earlier = range(sum(len(w) for w in plan.waves[:wave]))
            store.write_json(paths.unsent_before(run.run_id, wave), results.unsent_keys(store, run.run_id, earlier))
        found += [chunk_message(run, planned, deadline) for planned in plan.waves[wave] if planned.counted is None]
    return found


def flush(store: RunStore, run: Run, *, by: str | None, plan: Plan | None = None) -> Run:
    """Send the outbox entries `by` decided (None: every entry), then take them off the run."""
    entries = [due for due in run.outbox if by is None or due.by == by]
    if not entries:
        return run
    if not run.terminal:
        if plan is None and any(d.kind is StepKind.WAVE for d in entries):
            plan = store.load_plan(run.run_id)
        for due in entries:
            sent = store.send(messages_for(store, run, due, plan))
            log.info("run %s: %s %d-%d sent (%d messages)", run.run_id, due.kind.value, due.start, due.stop, sent)

    def take_off(current: Run) -> None:
        current.outbox = [due for due in current.outbox if due not in entries]

    return store.update_run(run.run_id, take_off).run


def settle(store: RunStore, run_id: str, change: Callable[[Run], None], by: str) -> Run:
    """A step is done: apply its `change`, decide what is due next, save both, then send it."""
    now = utc_now()

    def apply(run: Run) -> None:
        change(run)
        finisher.advance(run, by, now)

    return flush(store, ending.change_run(store, run_id, apply).run, by=by)
