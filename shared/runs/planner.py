"""Planning a run: resolve its segments, cut them into chunks, and decide on every row once.

The first row of an email in the run is upserted; a later row of it in the same segment is a
duplicate; a row whose email an earlier segment has is only tagged; rows past the connection's
contact limit are rejected. Those decisions (`Deduplicator`) are pure; the rest reads segments and
writes the plan.

Planning is idempotent. Its outputs carry the plan's token, and the plan is written once
(create-only): a duplicate planner that loses that write enqueues nothing. A redelivered plan
message (same delivery) finishes what its first attempt started: it takes the saved plan, records it
on the run with the first waves in the outbox, and sends them.
"""
from __future__ import annotations

import logging
import secrets
from array import array

from .. import blobstate, mapping, segments, storage
from ..blobstate import io_call, utc_now
from ..omnisend import AuthenticationError, PermissionDeniedError, RateLimitedError
from ..settings import Settings
from . import clients, ending, finisher, outbox, paths
from .errors import Deferred, RunFailure
from .messages import PlanMessage, may_defer
from .model import Note, Plan, PlannedChunk, Run, RunStatus
from .store import RunStore

log = logging.getLogger(__name__)


class Deduplicator:
    """The planner's decision on each valid row, in run order (pure: email keys in, notes out)."""

    def __init__(self, contact_limit: int | None) -> None:
        self.contact_limit = contact_limit
        self.tag_only_rows = 0
        self._earlier: set[int] = set()  # email keys of earlier segments
        self._limited: set[int] = set()  # email keys past the contact limit
        self._current: set[int] = set()  # email keys of this segment
        self._unique = 0

    def note(self, key: int) -> Note | None:
        """The note on a row with this email key, or None when the row is upserted."""
        if key in self._limited:
            return Note.LIMIT
        if key in self._current:
            return Note.DUPLICATE
        if key in self._earlier:
            self.tag_only_rows += 1
            self._current.add(key)
            return Note.TAG_ONLY
        self._unique += 1
        if self.contact_limit is not None and self._unique > self.contact_limit:
            self._limited.add(key)
            return Note.LIMIT
        self._current.add(key)
        return None

    def end_segment(self) -> list[int]:
        """Close the segment; returns its members (every email key it holds, sorted)."""
        members = sorted(self._current)
        self._earlier |= self._current
        self._current = set()
        return members


def plan(settings: Settings, store: RunStore, message: PlanMessage, me: str) -> None:
    run = store.get_run(message.run_id)
    if run.terminal:
        return
    if run.planned:
        outbox.flush(store, run, by=me)  # a redelivery sends what its first attempt decided; a duplicate nothing
        return
    ending.change_run(store, run.run_id, _mark_running)
    saved = store.load_plan(run.run_id)
    if saved is None:
        computed = _compute(settings, store, run, message, me)
        try:
            store.write_json(paths.plan(run.run_id), computed.to_dict(), create_only=True)
        except blobstate.ConflictError:
            log.info("run %s: another planner saved its plan first; this one enqueues nothing", run.run_id)
            return
        saved = computed
    elif saved.by != me:
        log.info("run %s: planned by another delivery; this one enqueues nothing", run.run_id)
        return
    adopt(store, run.run_id, saved, me)


def adopt(store: RunStore, run_id: str, saved: Plan, by: str) -> Run:
    """Record a saved plan on the run, with its first waves due, and send them."""
    now = utc_now()
    run = ending.change_run(store, run_id, lambda r: finisher.record_plan(r, saved, by, now)).run
    log.info("run %s planned: %d rows in %d chunks", run_id, saved.rows, run.chunk_count)
    return outbox.flush(store, run, by=by, plan=saved)


def _mark_running(run: Run) -> None:
    if run.status is RunStatus.QUEUED:
        run.status = RunStatus.RUNNING


def _compute(settings: Settings, store: RunStore, run: Run, message: PlanMessage, me: str) -> Plan:
    connection = clients.connection_of(settings, run)
    client = clients.client_for(settings, connection)
    try:
        client.check_key()
    except (AuthenticationError, PermissionDeniedError) as exc:
        raise RunFailure(f"Omnisend rejected the API key of connection {connection.display_name!r}: {exc}") from exc
    except RateLimitedError as exc:
        if not may_defer(message, exc.retry_after):
            raise RunFailure(f"planning gave up waiting for Omnisend's rate limit: {exc}") from exc
        raise Deferred(exc.retry_after, f"Omnisend rate limit: {exc}", rate_limited=True) from exc

    container = storage.container(settings, settings.segments_container)
    field_mapping = mapping.FieldMapping.from_dict(run.export.mapping)
    chosen = []
    for name in run.export.segments:
        try:
            with io_call("segments.get", f"{container.container_name}/{name}"):
                segment = segments.get_segment(container, name)
            chosen.append((segment, mapping.bind(field_mapping, segment.columns, segment.name)))
        except (segments.SegmentError, mapping.MappingError) as exc:
            raise RunFailure(str(exc)) from exc

    token = secrets.token_hex(8)
    decider = Deduplicator(connection.contact_limit)
    waves: list[tuple[PlannedChunk, ...]] = []
    rows = seq = 0
    try:
        for wave, (segment, bound) in enumerate(chosen):
            planned: list[PlannedChunk] = []
            with io_call("segments.plan", f"{container.container_name}/{segment.name}"):
                chunks = list(segments.plan_chunks(container, segment, settings.chunk_rows))
            for chunk in chunks:
                notes = _notes_of_chunk(container, chunk, bound, decider)
                if notes:
                    store.write_json(paths.notes(run.run_id, token, seq), notes)
                planned.append(PlannedChunk(seq, wave, chunk, bool(notes)))
                rows += chunk.row_count
                seq += 1
            members = array("Q", decider.end_segment())
            store.write(paths.members(run.run_id, token, wave), members.tobytes())
            waves.append(tuple(planned))
    except segments.SegmentError as exc:
        raise RunFailure(str(exc)) from exc
    return Plan(token, me, tuple(segment.name for segment, _ in chosen), rows, decider.tag_only_rows > 0,
                tuple(waves))


def _notes_of_chunk(container, chunk: segments.Chunk, bound, decider: Deduplicator) -> dict[str, str]:
    notes: dict[str, str] = {}
    with io_call("segments.read", f"{container.container_name}/{chunk.blob}"):
        rows = segments.read_chunk(container, chunk)
    for row in rows:
        mapped = mapping.map_row(bound, row)
        if isinstance(mapped, mapping.MappedContact):
            note = decider.note(mapping.email_key(mapped.email))
            if note is not None:
                notes[str(row.number)] = note.value
    return notes
