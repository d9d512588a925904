"""From decided steps to queue messages: the run's outbox.

A step's change and what it makes due are saved on the run in one write (the outbox); the messages
are sent after, and then taken off the run. A delivery that dies in between leaves them on record:
its redelivery sends them (it finds entries it decided), and the watchdog sends entries that look
abandoned. A message sent twice is harmless (results are counted once, chunks are claimed).
The chunks of an opened wave become visible at the pace of their connection's budget (stagger.py).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

from ..blobstate import parse_utc, utc_now
from ..ratelimit import Budget
from . import clients, ending, finisher, paths, results, stagger
from .errors import RunFailure
from .messages import ChunkMessage, Message, PlanMessage, UntagMessage
from .model import Due, Plan, PlannedChunk, Run, StepKind
from .store import RunStore

log = logging.getLogger(__name__)


def chunk_message(run: Run, planned: PlannedChunk, deadline: str, token: str) -> ChunkMessage:
    """The message of a planned chunk (`token`: the plan's, naming its notes)."""
    return ChunkMessage(run.run_id, planned.seq, planned.wave, planned.chunk, deadline,
                        token if planned.has_notes else None)


def messages_for(store: RunStore, run: Run, due: Due, plan: Plan | None,
                 budgets: dict[str, Budget] | None = None) -> list[tuple[Message, float]]:
    """The messages of a due step, each with the seconds after which it should become visible: the
    chunks of opened waves at the pace of the connection's `budgets` (stagger.py; None: all at once)."""
    deadline = run.deadline(store.settings.run_max_hours)
    if due.kind is StepKind.PLAN:
        return [(PlanMessage(run.run_id, deadline), 0.0)]
    if due.kind is StepKind.UNTAG:
        return [(UntagMessage(run.run_id, wave, deadline), 0.0) for wave in range(due.start, due.stop)]
    if due.kind is StepKind.PART:
        outgoing = []
        for part in store.load_parts(run.run_id, due.start, due.stop):
            chunks = [planned for planned in part.chunks if planned.counted is None]
            delays = _paced(run, chunks, budgets, part.ahead, _since_early(run))
            outgoing += [(chunk_message(run, p, deadline, part.token), d) for p, d in zip(chunks, delays)]
        return outgoing
    if plan is None:
        raise LookupError(f"run {run.run_id} has waves to open but no plan")
    chunks: list[PlannedChunk] = []
    for wave in range(due.start, due.stop):
        if plan.sequential and wave > 0:
            # Before a later segment's tag-only rows go out: which emails did earlier waves not send?
            earlier = range(sum(len(w) for w in plan.waves[:wave]))
            store.write_json(paths.unsent_before(run.run_id, wave), results.unsent_keys(store, run.run_id, earlier))
        chunks += [planned for planned in plan.waves[wave] if planned.counted is None]
    delays = _paced(run, chunks, budgets, since=_since_early(run) if due.start == 0 else 0.0)
    # The chunks that plan parts queued are in the queue already: they only pace the rest.
    return [(chunk_message(run, planned, deadline, plan.token), delay)
            for planned, delay in zip(chunks, delays) if planned.seq >= run.early_chunks]


def _paced(run: Run, chunks: list[PlannedChunk], budgets: dict[str, Budget] | None,
           ahead: tuple[int, int] = (0, 0), since: float = 0.0) -> list[float]:
    """Seconds from now after which each of `chunks` becomes visible: their wave's stagger, begun
    `since` seconds ago, with chunks that send `ahead` (upserts, tag calls) before them."""
    if budgets is None:
        return [0.0] * len(chunks)
    delays = stagger.visible_after(chunks, budgets, run.export.tag_contacts, ahead)
    return [max(0.0, delay - since) for delay in delays]


def _since_early(run: Run) -> float:
    """Seconds since plan parts queued the first wave's first chunks (0: none did)."""
    return (datetime.now(timezone.utc) - parse_utc(run.early_at)).total_seconds() if run.early_at else 0.0


def flush(store: RunStore, run: Run, *, by: str | None, plan: Plan | None = None) -> Run:
    """Send the outbox entries `by` decided (None: every entry), then take them off the run."""
    entries = [due for due in run.outbox if by is None or due.by == by]
    if not entries:
        return run
    if not run.terminal:
        budgets = None
        if any(d.kind in (StepKind.WAVE, StepKind.PART) for d in entries):
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
