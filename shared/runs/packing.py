"""Packing sparse chunks: adjacent chunks of a partition with few rows to send go out as one.

An incremental run sends a few rows of each chunk (1% changed: 10 of 1000 rows). Sent chunk by
chunk, that is one batch of 10 contacts per chunk: ten times the upserts of full batches, with as
many status reads and tag calls. So the planner hands each chunk, once decided, to a `ChunkPacker`,
which joins adjacent chunks of one partition (contiguous byte ranges: still one ranged read, row
numbers as before) while their rows to send stay within `max_sends` (the rows of a planned chunk, so
a worker never has more to send than a first run's chunk) and the group within `max_chunks` chunks
(the rows its worker reads and maps). A chunk with nothing to send inside a group goes with it (its
rows are unchanged or rejected: the worker counts them the same way). Adjacent chunks with nothing
to send outside such a group are joined the same way into one unit the planner counts (one result
and rejects file for up to `max_chunks` chunks, never enqueued): an unchanged rerun of a million rows
records 30 results, not 1,000. Pure: decided chunks in, units out.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..rejects import Reject
from ..segments import Chunk
from .model import Counts

MAX_PACKED_CHUNKS = 100  # a group's worker reads and maps at most 100 chunks' rows (about 1.5 s a core)


@dataclass(frozen=True)
class Decided:
    """A chunk as the planner decided its rows: notes by row number, how many rows it sends, and when
    it sends none, its counts and rejects."""

    chunk: Chunk
    notes: dict[str, str]
    sends: int
    counted: tuple[Counts, list[Reject]] | None = None
    upserts: int = 0  # of the rows it sends, those upserted (the others only get a tag)
    tagged: int = 0  # of the rows it sends, those that get a segment tag


class ChunkPacker:
    def __init__(self, max_sends: int, max_chunks: int = MAX_PACKED_CHUNKS) -> None:
        if max_sends < 1 or max_chunks < 1:
            raise ValueError("a packed chunk holds at least one row to send and one chunk")
        self.max_sends, self.max_chunks = max_sends, max_chunks
        self._group: list[Decided] = []
        self._sends = 0

    def add(self, decided: Decided) -> list[Decided]:
        """The units complete once `decided` is added (in order): packed groups and counted chunks."""
        if self._group and self._fits(decided):
            self._group.append(decided)
            self._sends += decided.sends
            return []
        done = self.finish()
        self._group, self._sends = [decided], decided.sends
        return done

    def finish(self) -> list[Decided]:
        """The open group as units: its chunks up to the last that sends as one, the rest as one counted."""
        group, self._group, self._sends = self._group, [], 0
        sending = [i for i, d in enumerate(group) if d.sends]
        if not sending:
            return [_counted(group)] if group else []
        last = sending[-1] + 1
        return [_sending(group[:last])] + ([_counted(group[last:])] if group[last:] else [])

    def _fits(self, decided: Decided) -> bool:
        tail = self._group[-1].chunk
        if decided.sends and not self._sends:
            return False  # a group the planner counts takes no chunk that sends
        return (decided.chunk.blob == tail.blob and decided.chunk.etag == tail.etag
                and decided.chunk.start == tail.end and len(self._group) < self.max_chunks
                and self._sends + decided.sends <= self.max_sends)


def _span(group: list[Decided]) -> Chunk:
    first, last = group[0].chunk, group[-1].chunk
    return replace(first, end=last.end, row_count=last.first_row + last.row_count - first.first_row)


def _sending(group: list[Decided]) -> Decided:
    if len(group) == 1:
        return group[0]
    notes: dict[str, str] = {}
    for decided in group:
        notes.update(decided.notes)
    return Decided(_span(group), notes, sum(d.sends for d in group), upserts=sum(d.upserts for d in group),
                   tagged=sum(d.tagged for d in group))


def _counted(group: list[Decided]) -> Decided:
    """Chunks without a row to send as one unit: their counts summed, their rejects in row order."""
    if len(group) == 1:
        return group[0]
    counts, rejects = Counts(), []
    for decided in group:
        counts.add(decided.counted[0])
        rejects += decided.counted[1]
    return Decided(_span(group), {}, 0, (counts, rejects))
