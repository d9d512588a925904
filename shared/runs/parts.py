"""Plan parts: the first wave's chunks queued while the rest of the run is still being planned.

Planning decides on every row before its plan is saved: 8-10 s for 200,000 rows, 40 s or more for
a million, during which Omnisend's budget would go unused. A chunk's decisions depend only on the
rows before it, so the planner hands its first-wave chunks out in parts as it goes: the first as soon
as a chunk sends anything, each later one once the rows waiting are as many as those queued so far
(and at least PART_MIN_ROWS), so a few parts cover any segment and the queue never runs dry.

Each part is written once (create-only) under the plan's token and recorded on the run, which
queues its chunks (`finisher.record_part`); the run is planned only when the whole plan is recorded,
so nothing past the parts opens and the run cannot end before it is. The whole plan holds the parts'
chunks again, with the same numbers, and queues only the rest.

A planner that comes after one that died (its redelivery, or the watchdog's message) plans again
with the parts' token: the same rows give the same decisions, which it checks against every part
saved, and it goes on from the last one. A part it cannot write was written by another planner at
work: it stops (`PartTaken`) and leaves the plan to that one.
"""
from __future__ import annotations

import logging

from .. import blobstate
from ..blobstate import utc_now
from . import ending, finisher, outbox, paths, stagger
from .errors import RunFailure
from .model import PlannedChunk, PlanPart
from .store import RunStore

log = logging.getLogger(__name__)

PART_MIN_ROWS = 10_000  # rows of a part after the first: a part's writes cost little beside its sends


class PartTaken(Exception):
    """Another planner of the run wrote the next part first: it plans the run, this one stops."""


class PartCutter:
    """When the first wave's planned chunks make a part (pure: chunks in, parts out)."""

    def __init__(self, tagging: bool, min_rows: int | None = None) -> None:
        self.tagging, self.min_rows = tagging, PART_MIN_ROWS if min_rows is None else min_rows
        self.pending: list[PlannedChunk] = []
        self.pending_rows = 0
        self.pending_sends = False  # a pending chunk sends something
        self.queued_rows = 0
        self.ahead = (0, 0)  # (upserts, tag calls) of the chunks in parts so far
        self.cut_parts = 0

    def add(self, planned: PlannedChunk) -> tuple[tuple[PlannedChunk, ...], tuple[int, int]] | None:
        """Take the next chunk of the first wave; returns a part's chunks (and the requests ahead of
        them) when they make one."""
        self.pending.append(planned)
        self.pending_rows += planned.chunk.row_count
        self.pending_sends = self.pending_sends or planned.counted is None
        if not self.pending_sends or (self.cut_parts and self.pending_rows < max(self.min_rows, self.queued_rows)):
            return None
        chunks, ahead = tuple(self.pending), self.ahead
        upserts, tags = stagger.requests_of([p for p in chunks if p.counted is None], self.tagging)
        self.ahead = (ahead[0] + upserts, ahead[1] + tags)
        self.queued_rows += self.pending_rows
        self.pending, self.pending_rows, self.pending_sends = [], 0, False
        self.cut_parts += 1
        return chunks, ahead


class PartWriter:
    """Saves the parts of one planning and queues their chunks; checks the parts an earlier planner saved."""

    def __init__(self, store: RunStore, run_id: str, token: str, by: str, mode: str, sync_tags: tuple[str, ...],
                 saved: list[PlanPart], recorded: int) -> None:
        self.store, self.run_id, self.token, self.by = store, run_id, token, by
        self.mode, self.sync_tags = mode, sync_tags
        self.saved, self.recorded = saved, recorded  # parts found, and chunks the run had queued from them
        self.index = 0

    def write(self, chunks: tuple[PlannedChunk, ...], ahead: tuple[int, int]) -> None:
        index, self.index = self.index, self.index + 1
        if index < len(self.saved):
            found = self.saved[index]
            if found.chunks != chunks:
                raise RunFailure(f"run {self.run_id}: planning again decided differently on chunks "
                                 f"{chunks[0].seq}-{chunks[-1].seq}, which were queued already (a segment or "
                                 "the connection's contact limit changed while the run was planned)")
            if chunks[-1].seq < self.recorded:
                return  # queued already
            part = found
        else:
            part = PlanPart(self.token, self.by, index, chunks, self.mode, self.sync_tags, ahead)
            try:
                self.store.write_json(paths.part(self.run_id, index), part.to_dict(), create_only=True)
            except blobstate.ConflictError:
                raise PartTaken(f"run {self.run_id}: another planner saved plan part {index} first") from None
        now = utc_now()
        run = ending.change_run(self.store, self.run_id, lambda r: finisher.record_part(r, part, self.by, now)).run
        outbox.flush(self.store, run, by=self.by)
        log.info("run %s: plan part %d queued (chunks %d-%d)", self.run_id, index, chunks[0].seq, chunks[-1].seq)
