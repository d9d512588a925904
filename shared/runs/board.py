"""Batch outcomes shared by every chunk of a connection: one board per connection, one reader at a time.

A chunk that has created its batches registers their ids on its connection's board and ends (it never
sleeps on Omnisend). Whichever delivery finds a read due takes the board's reader lease and lists
`GET /batches?endpoint=contacts` pages, newest first, until every wanted id is found; it records the
batches that finished or stopped, for every chunk at once (also those on the pages that no chunk has
registered yet: a chunk still creating its batches finds them when it asks). The chunks come back later, take their
outcomes from the board and settle them (per-item results of a batch with errors are read by its chunk).

Reads cost the rate budget that upserts need, so they are spaced by how busy the connection is
(`ReadPace`): while some chunk is still creating batches (it announced so on the board), a read is due
once READ_FILL batches are wanted (the most one page lists, with room for the batches created while it
is read), or BUSY_READ_SECONDS after the last one at Omnisend's 400 requests a minute; once no chunk is
creating any, every IDLE_READ_SECONDS, so the last batches of a run settle quickly. A chunk that will
tag its contacts once its batches settle registers them as urgent: segment tags have a budget of their
own, about a seventh of the upserts' contacts a minute, and it is spent only by chunks whose batches
are settled, so while such batches are wanted reads are due every TAG_READ_SECONDS (a twentieth of the
general budget).

Upserts must not run ahead of the tags either: a chunk that waits for its batches comes back through
the queue behind every chunk queued before it came back, so chunks creating batches as fast as the
general budget allows would keep the tagging ones out of the workers until the last upsert. A chunk
announces how many tag calls it will make once its batches settle; while its run owes a window and
a half of tag calls, a chunk yet to create its batches is held (`held_for_tags`) and comes back about
when its turn is due, with a window's worth still owed (the tags' work in hand while it upserts and its
batches settle).

The decisions are pure functions of a `Board`; `BatchBoard` is the thin I/O around them (one blob per
connection, written with ETags).
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .. import blobstate
from ..omnisend import MAX_PAGE_SIZE, Batch, NotFoundError, OmnisendClient
from ..ratelimit import Budget
from . import paths
from .store import RunStore

log = logging.getLogger(__name__)

BUSY_READ_SECONDS = 60.0  # at most between reads while batches are still being created, at Omnisend's 400/min
# A read is due sooner once this many batches are wanted: one page (MAX_PAGE_SIZE, 250) lists them and
# the batches the other deliveries create meanwhile (4-10 workers, 10 batches each). Fewer reads leave
# more of the budget to upserts: a 200,000-contact run read 21 times 15 s apart, 10-11 times this way.
READ_FILL = 200
# ... and once this many are wanted by a chunk in its run's tail (finisher.in_tail): a read by a full page
# just before the last upsert settled about 20 chunks at once, whose finishing work (0.35-0.5 s each on
# 4 workers) came after the last upsert and held back the last chunk's own look again. Two or three more
# reads (13 in a 200,000-contact run) leave 4-6 chunks to settle at its end.
TAIL_READ_FILL = 50
IDLE_READ_SECONDS = 1.0  # between reads once no chunk is creating batches
TAG_READ_SECONDS = 3.0  # between reads while batches of a chunk that will tag are wanted, at 400/min
MIN_TAG_READ_SECONDS = 0.5  # ... on any budget
LEASE_SECONDS = 30.0  # a reader that died lets go of the board after this long
CREATING_SECONDS = 2.0  # an announcement of batches being created lapses after this long per batch,
MIN_CREATING_SECONDS = 10.0  # ... and not before this long
KEEP_SECONDS = 120.0  # how long a recorded outcome stays for its chunk to collect it
MAX_PAGES = 8  # list pages per read (2,000 batches)
SINGLE_READ_AFTER = 60.0  # a wanted batch no list page showed for this long is read on its own
MAX_SINGLE_READS = 5  # ... at most this many per read
MAX_WAIT_SECONDS = 4.0  # a waiting chunk looks again at least this often: a read may come sooner than
# planned (the last chunk creating batches has registered them), and the run's end waits for it
TAGGING_SECONDS = 600.0  # the tag calls a chunk announced count until it made them, or for this long
MAX_HOLD_SECONDS = 300.0  # a chunk held for the tags comes back within this long
HOLD_WINDOWS = 1.5  # a chunk yet to upsert is held while this many windows of tag calls are owed ...
RESUME_WINDOWS = 1.0  # ... until about this many would be: the tags' work in hand while it upserts
GONE = "gone"  # the status recorded for a batch Omnisend no longer has (404)


@dataclass
class Board:
    """A connection's board: batches wanted by waiting chunks, outcomes found, the reader's lease."""

    wanted: dict[str, float] = field(default_factory=dict)  # batch id -> when it was registered
    done: dict[str, list] = field(default_factory=dict)  # batch id -> [status, errors, total, finished, at]
    creating: dict[str, float] = field(default_factory=dict)  # delivery -> until when it creates batches
    urgent: set[str] = field(default_factory=set)  # wanted batches of chunks that tag once they settle
    tagging: dict[str, list] = field(default_factory=dict)  # delivery -> [until, tag calls it owes, run id]
    admitted: dict[str, list] = field(default_factory=dict)  # run id -> [last chunk seq let in, when]
    read_at: float = 0.0
    reader: str | None = None
    reader_until: float = 0.0

    def to_dict(self) -> dict:
        return {"wanted": self.wanted, "done": self.done, "creating": self.creating, "urgent": sorted(self.urgent),
                "tagging": self.tagging, "admitted": self.admitted, "readAt": self.read_at, "reader": self.reader,
                "readerUntil": self.reader_until}

    @classmethod
    def from_dict(cls, data: dict) -> "Board":
        return cls(wanted={k: float(v) for k, v in (data.get("wanted") or {}).items()},
                   done={k: list(v) for k, v in (data.get("done") or {}).items()},
                   creating={k: float(v) for k, v in (data.get("creating") or {}).items()},
                   urgent=set(data.get("urgent") or ()),
                   tagging={k: list(v) for k, v in (data.get("tagging") or {}).items()},
                   admitted={k: list(v) for k, v in (data.get("admitted") or {}).items()},
                   read_at=float(data.get("readAt") or 0.0), reader=data.get("reader"),
                   reader_until=float(data.get("readerUntil") or 0.0))


# -- pure decisions ----------------------------------------------------------------------------

def busy(board: Board, now: float) -> bool:
    """Some delivery is creating batches: reads would take slots from upserts."""
    return any(until > now for until in board.creating.values())


@dataclass(frozen=True)
class ReadPace:
    """Seconds between list reads: while batches are being created, while a tagging chunk waits for
    some of them, and once no chunk is creating any."""

    busy: float = BUSY_READ_SECONDS
    tagging: float = TAG_READ_SECONDS
    idle: float = IDLE_READ_SECONDS
    fill: int = READ_FILL  # wanted batches that make a read due at once

    @classmethod
    def of(cls, budget: Budget, *, tail: bool = False) -> "ReadPace":
        """The pace for a connection's general budget: a read costs a larger share of a smaller
        budget (busy reads 60 s apart at 400/min, 4 s at 6,000/min). A budget over a shorter window
        (a benchmark compressing Omnisend's minute) is a faster rate, so its reads come sooner too.
        `tail`: for a chunk in its run's tail, reads by TAIL_READ_FILL batches."""
        per_minute = budget.requests_per_window * 60.0 / budget.window_seconds
        share = 400.0 / max(1.0, per_minute)
        return cls(busy=min(BUSY_READ_SECONDS, max(IDLE_READ_SECONDS, BUSY_READ_SECONDS * share)),
                   tagging=min(TAG_READ_SECONDS, max(MIN_TAG_READ_SECONDS, TAG_READ_SECONDS * share)),
                   fill=TAIL_READ_FILL if tail else READ_FILL)


def next_read(board: Board, now: float, pace: ReadPace = ReadPace()) -> float:
    spacing = pace.busy if busy(board, now) else pace.idle
    if board.urgent:
        spacing = min(spacing, pace.tagging)
    return board.read_at + spacing


def leased(board: Board, now: float) -> bool:
    return board.reader is not None and board.reader_until > now


def read_due(board: Board, now: float, pace: ReadPace = ReadPace()) -> bool:
    if not board.wanted or leased(board, now):
        return False
    return len(board.wanted) >= pace.fill or now >= next_read(board, now, pace)


def announce(board: Board, owner: str, batches: int, now: float, *, tag_calls: int = 0,
             chunk: tuple[str, int] | None = None) -> None:
    """`owner` is about to create `batches` batches, after which it owes `tag_calls` tag calls;
    `chunk` (run id, seq) is the chunk it delivers."""
    board.creating[owner] = now + max(MIN_CREATING_SECONDS, batches * CREATING_SECONDS)
    if tag_calls:
        board.tagging[owner] = [now + TAGGING_SECONDS, tag_calls, chunk[0] if chunk else ""]
    if chunk is not None:
        run_id, seq = chunk
        last = board.admitted.get(run_id, [seq, now])[0]
        board.admitted[run_id] = [max(last, seq), now]


def tagged(board: Board, owner: str) -> None:
    """`owner` made its tag calls (or gave up on them)."""
    board.tagging.pop(owner, None)


def tag_backlog(board: Board, now: float, run_id: str) -> list[int]:
    """The tag calls owed by each chunk of the run that announced some and has not made them yet. Only
    the run's own: the queue order that holds are for is within a run, and a cancelled run's chunks
    never say they are done (their announcements would otherwise hold the next run until they lapse)."""
    return [int(entry[1]) for entry in board.tagging.values() if entry[0] > now and entry[2:] == [run_id]]


def held_for_tags(board: Board, now: float, chunk: tuple[str, int], tags: Budget) -> float:
    """Seconds a chunk yet to create its batches waits for the tags to catch up (0: it goes now).

    It goes while fewer tag calls are owed than HOLD_WINDOWS of the tag budget. Else it comes back
    once the calls owed then would have come down to RESUME_WINDOWS, counting the calls of the run's
    chunks between the last one let in and this one (held too, and let in first).
    """
    run_id, seq = chunk
    owed = tag_backlog(board, now, run_id)
    if sum(owed) < HOLD_WINDOWS * tags.requests_per_window:
        return 0.0
    per_second = tags.requests_per_window / tags.window_seconds
    last = board.admitted.get(run_id, [seq - 1])[0]
    ahead = max(0, seq - int(last) - 1) * sum(owed) / len(owed)
    seconds = (sum(owed) - RESUME_WINDOWS * tags.requests_per_window + ahead) / per_second
    return min(MAX_HOLD_SECONDS, max(1.0, seconds))


def retire(board: Board, owner: str) -> None:
    board.creating.pop(owner, None)


def register(board: Board, owner: str, batch_ids: Iterable[str], now: float, *, urgent: bool = False) -> None:
    """`owner` created these batches and waits for them (it is no longer creating); `urgent` when it
    will tag their contacts once they settle."""
    retire(board, owner)
    for batch_id in batch_ids:
        if batch_id not in board.done:
            board.wanted.setdefault(batch_id, now)
            if urgent:
                board.urgent.add(batch_id)


def take_lease(board: Board, owner: str, now: float) -> None:
    board.reader, board.reader_until = owner, now + LEASE_SECONDS


def release(board: Board, owner: str) -> None:
    if board.reader == owner:
        board.reader, board.reader_until = None, 0.0


def record(board: Board, owner: str, found: dict[str, Batch], gone: Iterable[str], now: float) -> None:
    """A read's findings: finished and stopped batches are recorded (and no longer wanted), running
    ones stay wanted; outcomes older than KEEP_SECONDS go."""
    for batch_id, batch in found.items():
        if batch.done:
            board.wanted.pop(batch_id, None)
            if batch_id not in board.done:
                board.done[batch_id] = [batch.status, batch.errors_count, batch.total_count, batch.finished_count,
                                        now]
    for batch_id in gone:
        if board.wanted.pop(batch_id, None) is not None:
            board.done[batch_id] = [GONE, 0, 0, 0, now]
    board.urgent &= board.wanted.keys()
    board.done = {k: v for k, v in board.done.items() if v[4] > now - KEEP_SECONDS}
    board.creating = {k: until for k, until in board.creating.items() if until > now}
    board.tagging = {k: v for k, v in board.tagging.items() if v[0] > now}
    board.admitted = {k: v for k, v in board.admitted.items() if v[1] > now - TAGGING_SECONDS}
    board.read_at = now
    release(board, owner)


def outcomes(board: Board, batch_ids: Iterable[str]) -> dict[str, Batch]:
    """The recorded outcomes of these batches (those not recorded yet are left out)."""
    found = {}
    for batch_id in batch_ids:
        entry = board.done.get(batch_id)
        if entry is not None:
            status, errors, total, finished, _ = entry
            found[batch_id] = Batch(batch_id, status, int(total), int(finished), int(errors))
    return found


def wait_seconds(board: Board, now: float, pace: ReadPace = ReadPace()) -> float:
    """How long a chunk whose batches are not all recorded should wait before it looks again."""
    if leased(board, now):
        return 1.0  # a read is under way
    return float(min(max(1, math.ceil(next_read(board, now, pace) - now)), MAX_WAIT_SECONDS))


def single_reads(board: Board, listed: Iterable[str], now: float) -> list[str]:
    """Wanted batches that no list page showed although they have been wanted a while."""
    seen = set(listed)
    late = sorted((at, batch_id) for batch_id, at in board.wanted.items()
                  if batch_id not in seen and at <= now - SINGLE_READ_AFTER)
    return [batch_id for _, batch_id in late[:MAX_SINGLE_READS]]


# -- I/O ---------------------------------------------------------------------------------------

def list_wanted(client: OmnisendClient, wanted: set[str], max_pages: int = MAX_PAGES) -> dict[str, Batch]:
    """Pages of GET /batches, newest first, until every wanted id is listed (or the list ends): every
    batch the pages showed."""
    found: dict[str, Batch] = {}
    for page in range(max_pages):
        listed = client.list_batches(offset=page * MAX_PAGE_SIZE, limit=MAX_PAGE_SIZE)
        found.update({b.batch_id: b for b in listed})
        if len(listed) < MAX_PAGE_SIZE or not wanted - found.keys():
            break
    return found


class BatchBoard:
    """A connection's board as one delivery sees it (blob `paths.batch_board`)."""

    def __init__(self, store: RunStore, connection_id: str, owner: str, client: OmnisendClient,
                 pace: ReadPace = ReadPace(), *, urgent: bool = False, chunk: tuple[str, int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`urgent`: this delivery tags its contacts once its batches settle; `chunk`: (run id, seq)."""
        self.store, self.name, self.owner, self.client, self.clock = (
            store, paths.batch_board(connection_id), owner, client, clock)
        self.pace, self.urgent, self.chunk = pace, urgent, chunk

    def held_for_tags(self, tags: Budget) -> float:
        """Seconds this chunk, yet to create its batches, should wait for the tags (0: go now)."""
        if self.chunk is None:
            return 0.0
        return held_for_tags(self._load()[0], self.clock(), self.chunk, tags)

    def creating(self, batches: int, tag_calls: int = 0) -> None:
        """Announce that this delivery is about to create batches (reads wait meanwhile), and the tag
        calls it will make once they settle."""
        self._update(lambda board: announce(board, self.owner, batches, self.clock(), tag_calls=tag_calls,
                                            chunk=self.chunk))

    def tagged(self) -> None:
        """This delivery made the tag calls it announced."""
        self._update(lambda board: tagged(board, self.owner))

    def interrupted(self) -> None:
        """This delivery stopped creating batches before it was done (it was deferred)."""
        self._update(lambda board: retire(board, self.owner))

    def outcomes(self, batch_ids: list[str]) -> tuple[dict[str, Batch], float]:
        """Outcomes of these batches that are known (reading Omnisend if a read is due and no one else
        is), and how many seconds to wait before asking again for the rest."""
        reading = []

        def want(board: Board) -> None:
            now = self.clock()
            register(board, self.owner, batch_ids, now, urgent=self.urgent)
            reading.clear()
            if any(b not in board.done for b in batch_ids) and read_due(board, now, self.pace):
                take_lease(board, self.owner, now)
                reading.append(set(board.wanted))

        board = self._update(want)
        if reading:
            board = self._read(reading[0])
        found = outcomes(board, batch_ids)
        return found, wait_seconds(board, self.clock(), self.pace)

    def _read(self, wanted: set[str]) -> Board:
        found: dict[str, Batch] = {}
        gone: list[str] = []
        try:
            found = list_wanted(self.client, wanted)
            for batch_id in single_reads(self._load()[0], found, self.clock()):
                try:
                    found[batch_id] = self.client.get_batch(batch_id)
                except NotFoundError:
                    gone.append(batch_id)
        except Exception:
            self._update(lambda board: release(board, self.owner))
            raise
        settled = sum(1 for batch_id in wanted if batch_id in found and found[batch_id].done)
        log.info("batch board %s: %d of %d wanted batches settled", self.name, settled, len(wanted))
        return self._update(lambda board: record(board, self.owner, found, gone, self.clock()))

    def _load(self) -> tuple[Board, str | None]:
        loaded = self.store.read_json(self.name)
        return (Board(), None) if loaded is None else (Board.from_dict(loaded[0]), loaded[1])

    def _update(self, change: Callable[[Board], None]) -> Board:
        while True:
            board, etag = self._load()
            before = copy.deepcopy(board)
            change(board)
            if board == before:
                return board
            try:
                self.store.write_json(self.name, board.to_dict(), if_match=etag, create_only=etag is None)
            except blobstate.ConflictError:
                continue
            return board
