"""A chunk's outcome: its result (written once) and its rejects file, and the run's rejects CSV.

The rejects file is written first under a token of its own, then the result, create-only, naming that
token in its metadata. Two deliveries of one chunk may both write rejects files, but only one result:
the rejects CSV takes each chunk's file from its result, so it always agrees with the run's counts.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from .. import blobstate
from ..rejects import REJECTS_CSV_HEADER, Reject, rejects_to_csv
from . import paths
from .model import Counts
from .store import RunStore

NO_REJECTS = "none"
HEADER = (",".join(REJECTS_CSV_HEADER) + "\r\n").encode()


@dataclass(frozen=True)
class ChunkResult:
    seq: int
    counts: Counts
    unsent_keys: list[int] = field(default_factory=list)  # emails the chunk did not get into Omnisend
    rate_limited: int = 0  # deferrals for a 429 or a spent budget on the way
    rejects: str = NO_REJECTS  # token of its rejects file
    changes: str = NO_REJECTS  # token of its change log (what it verified, for the sync state)

    def to_dict(self) -> dict:
        return {"seq": self.seq, "counts": self.counts.to_dict(), "unsentKeys": self.unsent_keys,
                "rateLimited": self.rate_limited, "rejects": self.rejects, "changes": self.changes}

    @classmethod
    def from_dict(cls, data: dict) -> "ChunkResult":
        return cls(int(data["seq"]), Counts.from_dict(data["counts"]), list(data.get("unsentKeys", [])),
                   int(data.get("rateLimited", 0)), data.get("rejects", NO_REJECTS),
                   data.get("changes", NO_REJECTS))


def record(store: RunStore, run_id: str, result: ChunkResult, rejects: Iterable[Reject],
           changes: bytes | None = None) -> bool:
    """Put the chunk's outcome on record: its change log (`shared.sync.encode_changes`) and rejects
    first, then the result naming them; False when another delivery's result is there already."""
    rejects = list(rejects)
    token = secrets.token_hex(6) if rejects or changes else NO_REJECTS
    result = ChunkResult(result.seq, result.counts, result.unsent_keys, result.rate_limited,
                         token if rejects else NO_REJECTS, token if changes else NO_REJECTS)
    if changes:
        store.write(paths.changes(run_id, result.seq, token), changes)
    if rejects:
        store.write(paths.rejects(run_id, result.seq, token), rejects_to_csv(rejects).encode())
    try:
        store.write_json(paths.result(run_id, result.seq), result.to_dict(), create_only=True,
                         metadata={"rejects": result.rejects, "changes": result.changes})
    except blobstate.ConflictError:
        # Not the files of the result on record.
        if rejects:
            store.delete(paths.rejects(run_id, result.seq, token))
        if changes:
            store.delete(paths.changes(run_id, result.seq, token))
        return False
    return True


def read_changes(store: RunStore, run_id: str, result: ChunkResult) -> bytes | None:
    """The change log a result names (None when the chunk verified nothing)."""
    return read_change_log(store, run_id, result.seq, result.changes)


def read_change_log(store: RunStore, run_id: str, seq: int, token: str) -> bytes | None:
    """The change log of chunk `seq` under `token` (NO_REJECTS: it verified nothing)."""
    if token == NO_REJECTS:
        return None
    found = store.read(paths.changes(run_id, seq, token))
    if found is None:
        raise LookupError(f"run {run_id}: the change log of chunk {seq} is missing")
    return found.data


def change_tokens(store: RunStore, run_id: str) -> dict[int, str | None]:
    """The change log token of every chunk with a result, from one listing of the results (None: a
    result written before its metadata named it, to be read)."""
    return {paths.seq_of_result(item.name): item.metadata.get("changes")
            for item in store.list(paths.results_prefix(run_id), metadata=True)}


def read(store: RunStore, run_id: str, seq: int) -> ChunkResult | None:
    found = store.read_json(paths.result(run_id, seq))
    return None if found is None else ChunkResult.from_dict(found[0])


def exists(store: RunStore, run_id: str, seq: int) -> bool:
    return store.read(paths.result(run_id, seq)) is not None


def unsent_keys(store: RunStore, run_id: str, seqs: Iterable[int]) -> list[int]:
    """Every email key the given chunks did not send (each of them has a result)."""
    unsent: set[int] = set()
    for seq in seqs:
        result = read(store, run_id, seq)
        if result is None:
            raise LookupError(f"run {run_id}: chunk {seq} has no result yet")
        unsent.update(result.unsent_keys)
    return sorted(unsent)


def iter_rejects_csv(store: RunStore, run_id: str) -> Iterator[bytes]:
    """Every rejected and failed row of the run's counted-or-finished chunks, as CSV pieces (header
    once, chunks in order), read from storage piece by piece."""
    yield HEADER
    tokens = {paths.seq_of_result(item.name): item.metadata.get("rejects")
              for item in store.list(paths.results_prefix(run_id), metadata=True)}
    files = []
    for item in store.list(paths.rejects_prefix(run_id)):
        parsed = paths.parse_rejects(item.name)
        if parsed and tokens.get(parsed[0]) == parsed[1]:
            files.append((parsed[0], item.name))
    for _, name in sorted(files):
        pieces = store.stream(name)
        if pieces is not None:
            yield from _without_header(pieces)


def _without_header(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """A chunk's rejects file without its header line (which may span pieces)."""
    start: bytes | None = b""
    for piece in pieces:
        if start is not None:
            start += piece
            if len(start) < len(HEADER) and HEADER.startswith(start):
                continue  # all header so far
            piece = start[len(HEADER):] if start.startswith(HEADER) else start
            start = None
        if piece:
            yield piece
