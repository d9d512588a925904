"""Batch outcomes shared by every chunk of a connection: one board per connection, one reader at a time.

A chunk that has created its batches registers their ids on its connection's board and ends (it never
sleeps on Omnisend). Whichever delivery finds a read due takes the board's reader lease and lists
`GET /batches?endpoint=contacts` pages, newest first, until every wanted id is found; it records the
batches that finished or stopped, for every chunk at once (also those on the pages that no chunk has
registered yet: a chunk still creating its batches finds them when it asks). The chunks come back later, take their
outcomes from the board and settle them (per-item results of a batch with errors are read by its chunk).

Reads cost the rate budget that upserts need, so they are spaced by how busy the connection is:
while some chunk is still creating batches (it announced so on the board), a read is due every
BUSY_READ_SECONDS; once none is, every IDLE_READ_SECONDS, so the last batches of a run settle quickly.

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
from . import paths
from .store import RunStore

log = logging.getLogger(__name__)

BUSY_READ_SECONDS = 15.0  # between reads while batches are still being created, at Omnisend's 400/min
IDLE_READ_SECONDS = 1.0  # between reads once no chunk is creating batches
LEASE_SECONDS = 30.0  # a reader that died lets go of the board after this long
CREATING_SECONDS = 2.0  # an announcement of batches being created lapses after this long per batch,
MIN_CREATING_SECONDS = 10.0  # ... and not before this long
KEEP_SECONDS = 120.0  # how long a recorded outcome stays for its chunk to collect it
MAX_PAGES = 8  # list pages per read (2,000 batches)
SINGLE_READ_AFTER = 60.0  # a wanted batch no list page showed for this long is read on its own
MAX_SINGLE_READS = 5  # ... at most this many per read
GONE = "gone"  # the status recorded for a batch Omnisend no longer has (404)


@dataclass
class Board:
    """A connection's board: batches wanted by waiting chunks, outcomes found, the reader's lease."""

    wanted: dict[str, float] = field(default_factory=dict)  # batch id -> when it was registered
    done: dict[str, list] = field(default_factory=dict)  # batch id -> [status, errors, total, finished, at]
    creating: dict[str, float] = field(default_factory=dict)  # delivery -> until when it creates batches
    read_at: float = 0.0
    reader: str | None = None
    reader_until: float = 0.0

    def to_dict(self) -> dict:
        return {"wanted": self.wanted, "done": self.done, "creating": self.creating, "readAt": self.read_at,
                "reader": self.reader, "readerUntil": self.reader_until}

    @classmethod
    def from_dict(cls, data: dict) -> "Board":
        return cls(wanted={k: float(v) for k, v in (data.get("wanted") or {}).items()},
                   done={k: list(v) for k, v in (data.get("done") or {}).items()},
                   creating={k: float(v) for k, v in (data.get("creating") or {}).items()},
                   read_at=float(data.get("readAt") or 0.0), reader=data.get("reader"),
                   reader_until=float(data.get("readerUntil") or 0.0))


# -- pure decisions ----------------------------------------------------------------------------

def busy(board: Board, now: float) -> bool:
    """Some delivery is creating batches: reads would take slots from upserts."""
    return any(until > now for until in board.creating.values())


def busy_read_seconds(requests_per_minute: int) -> float:
    """Seconds between reads while batches are being created: a read costs a larger share of a
    smaller budget (15 s at 400/min, 1 s from 6,000/min)."""
    return min(BUSY_READ_SECONDS, max(IDLE_READ_SECONDS, BUSY_READ_SECONDS * 400 / max(1, requests_per_minute)))


def next_read(board: Board, now: float, busy_seconds: float = BUSY_READ_SECONDS) -> float:
    return board.read_at + (busy_seconds if busy(board, now) else IDLE_READ_SECONDS)


def leased(board: Board, now: float) -> bool:
    return board.reader is not None and board.reader_until > now


def read_due(board: Board, now: float, busy_seconds: float = BUSY_READ_SECONDS) -> bool:
    return bool(board.wanted) and not leased(board, now) and now >= next_read(board, now, busy_seconds)


def announce(board: Board, owner: str, batches: int, now: float) -> None:
    board.creating[owner] = now + max(MIN_CREATING_SECONDS, batches * CREATING_SECONDS)


def retire(board: Board, owner: str) -> None:
    board.creating.pop(owner, None)


def register(board: Board, owner: str, batch_ids: Iterable[str], now: float) -> None:
    """`owner` created these batches and waits for them (it is no longer creating)."""
    retire(board, owner)
    for batch_id in batch_ids:
        if batch_id not in board.done:
            board.wanted.setdefault(batch_id, now)


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
    board.done = {k: v for k, v in board.done.items() if v[4] > now - KEEP_SECONDS}
    board.creating = {k: until for k, until in board.creating.items() if until > now}
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


def wait_seconds(board: Board, now: float, busy_seconds: float = BUSY_READ_SECONDS) -> float:
    """How long a chunk whose batches are not all recorded should wait before it looks again."""
    if leased(board, now):
        return 1.0  # a read is under way
    return float(min(max(1, math.ceil(next_read(board, now, busy_seconds) - now)), busy_seconds + 1))


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
                 requests_per_minute: int = 400, clock: Callable[[], float] = time.time) -> None:
        self.store, self.name, self.owner, self.client, self.clock = (
            store, paths.batch_board(connection_id), owner, client, clock)
        self.busy_seconds = busy_read_seconds(requests_per_minute)

    def creating(self, batches: int) -> None:
        """Announce that this delivery is about to create batches (reads wait meanwhile)."""
        self._update(lambda board: announce(board, self.owner, batches, self.clock()))

    def interrupted(self) -> None:
        """This delivery stopped creating batches before it was done (it was deferred)."""
        self._update(lambda board: retire(board, self.owner))

    def outcomes(self, batch_ids: list[str]) -> tuple[dict[str, Batch], float]:
        """Outcomes of these batches that are known (reading Omnisend if a read is due and no one else
        is), and how many seconds to wait before asking again for the rest."""
        reading = []

        def want(board: Board) -> None:
            now = self.clock()
            register(board, self.owner, batch_ids, now)
            reading.clear()
            if any(b not in board.done for b in batch_ids) and read_due(board, now, self.busy_seconds):
                take_lease(board, self.owner, now)
                reading.append(set(board.wanted))

        board = self._update(want)
        if reading:
            board = self._read(reading[0])
        found = outcomes(board, batch_ids)
        return found, wait_seconds(board, self.clock(), self.busy_seconds)

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
