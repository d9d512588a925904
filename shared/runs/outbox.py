"""From decided steps to queue messages: the run's outbox.

A step's change and what it makes due are saved on the run in one write (the outbox); the messages
are sent after, and then taken off the run. A delivery that dies in between leaves them on record:
its redelivery sends them (it finds entries it decided), and the watchdog sends entries that look
abandoned. A message sent twice is harmless (results are counted once, chunks are claimed).
The chunks of an opened wave become visible at the pace of their connection's budget (stagger.py).
"""
from __future__ import annotations

import logging
from typing import Callable

from ..blobstate import utc_now
from ..ratelimit import Budget
from . import clients, ending, finisher, paths, results, stagger
from .errors import RunFailure
from .messages import ChunkMessage, Message, PlanMessage, UntagMessage
from .model import Due, Plan, PlannedChunk, Run, StepKind
from .store import RunStore

log = logging.getLogger(__name__)


def chunk_message(run: Run, planned: PlannedChunk, deadline: str) -> ChunkMessage:
    return ChunkMessage(run.run_id, planned.seq, planned.wave, planned.chunk, deadline,
                        run.plan_token if planned.has_notes else None)


def messages_for(store: RunStore, run: Run, due: Due, plan: Plan | None,
                 budgets: dict[str, Budget] | None = None) -> list[tuple[Message, float]]:
    """The messages of a due step, each with the seconds after which it should become visible: the
    chunks of opened waves at the pace of the connection's `budgets` (stagger.py; None: all at once)."""
    deadline = run.deadline(store.settings.run_max_hours)
    if due.kind is StepKind.PLAN:
        return [(PlanMessage(run.run_id, deadline), 0.0)]
    if due.kind is StepKind.UNTAG:
        return [(UntagMessage(run.run_id, wave, deadline), 0.0) for wave in range(due.start, due.stop)]
    if plan is None:
        raise LookupError(f"run {run.run_id} has waves to open but no plan")
    chunks: list[PlannedChunk] = []
    for wave in range(due.start, due.stop):
        if plan.sequential and wave > 0:
            # Before a later segment's tag-only rows go out: which emails did earlier waves not send?
            earlier = range(sum(len(w) for w in plan.waves[:wave]))
            store.write_json(paths.unsent_before(run.run_id, wave), results.unsent_keys(store, run.run_id, earlier))
        chunks += [planned for planned in plan.waves[wave] if planned.counted is None]
    delays = (stagger.visible_after(chunks, budgets, run.export.tag_contacts) if budgets is not None
              else [0.0] * len(chunks))
    return [(chunk_message(run, planned, deadline), delay) for planned, delay in zip(chunks, delays)]


def flush(store: RunStore, run: Run, *, by: str | None, plan: Plan | None = None) -> Run:
    """Send the outbox entries `by` decided (None: every entry), then take them off the run."""
    entries = [due for due in run.outbox if by is None or due.by == by]
    if not entries:
        return run
    if not run.terminal:
        budgets = None
        if any(d.kind is StepKind.WAVE for d in entries):
            plan = plan or store.load_plan(run.run_id)
            budgets = _budgets(store, run)
        for due in entries:
            sent = store.send_paced(messages_for(store, run, due, plan, budgets))  # delays bounded by stagger
            log.info("run %s: %s %d-%d sent (%d messages)", run.run_id, due.kind.value, due.start, due.stop, sent)

    def take_off(current: Run) -> None:
        current.outbox = [due for due in current.outbox if due not in entries]

    return store.update_run(run.run_id, take_off).run


def _budgets(store: RunStore, run: Run) -> dict[str, Budget] | None:
    """The budgets of the run's connection, to pace its chunks by; None when it is gone (its chunks
    fail on their own)."""
    try:
        return clients.budgets(clients.connection_of(store.settings, run))
    except RunFailure:
        return None


def settle(store: RunStore, run_id: str, change: Callable[[Run], None], by: str) -> Run:
    """A step is done: apply its `change`, decide what is due next, save both, then send it."""
    now = utc_now()

    def apply(run: Run) -> None:
        change(run)
        finisher.advance(run, by, now)

    return flush(store, ending.change_run(store, run_id, apply).run, by=by)
