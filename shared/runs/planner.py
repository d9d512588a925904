"""Planning a run: resolve its segments, cut them into chunks, and decide on every row once.

The first row of an email in the run is upserted; a later row of it in the same segment is a
duplicate; a row whose email an earlier segment has is only tagged; rows past the connection's
contact limit are rejected. Those decisions (`Deduplicator`) are pure; the rest reads segments and
writes the plan.

Against the export's sync state (`shared.sync`, loaded once), each row the run would send is then
`new`, `changed`, `tagOnly` or `unchanged` (`SyncDecider`, pure): only new and changed rows are
upserted, tag-only rows only tagged, unchanged rows cost no request. A chunk with nothing to send is
counted by the planner (its result and rejects recorded here) and never enqueued.

The mode (`sync.resolve_mode`) is the one the run's starter asked for, else full for an export without
a state or a scheduled run past its `fullResyncDays`, else incremental. A full run upserts every valid
row. A preview classifies the rows the same way but sends and enqueues nothing: every chunk is counted
here, and the report (counts per class, samples, leavers and the removal gate) is saved beside the plan.

The first wave's chunks are queued in parts while the rest is planned (parts.py), so Omnisend's
budget is not left idle for the seconds planning takes; the run is planned once the whole plan is.

Planning is idempotent. Its outputs carry the plan's token, and the plan is written once
(create-only): a duplicate planner that loses that write (or a part's) enqueues nothing more. A
redelivered plan message (same delivery) finishes what its first attempt started: it takes the saved
plan, records it on the run with the first waves in the outbox, and sends them; without a saved plan,
it plans again under the token of the parts saved, checks them, and goes on after them.
"""
from __future__ import annotations

import logging
import secrets
from array import array

from datetime import datetime, timezone

from .. import blobstate, mapping, segments, storage, sync
from ..blobstate import io_call, utc_now
from ..rejects import Reject
from ..omnisend import AuthenticationError, PermissionDeniedError, RateLimitedError
from ..settings import Settings
from . import clients, deletion, ending, finisher, outbox, parts, paths
from .errors import Deferred, RunFailure
from .messages import PlanMessage, may_defer
from .model import Counts, Note, Plan, PlannedChunk, PlanPart, Run, RunStatus, Sends, Trigger
from .packing import ChunkPacker, Decided
from .results import ChunkResult, record
from .store import RunStore
from .worker import note_reject

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
        if self._earlier:
            self._earlier |= self._current
        else:  # the first segment: its set becomes the earlier ones' without a copy (a million keys: 40 MB)
            self._earlier = self._current
        self._current = set()
        return members


class SyncDecider:
    """What a run sends of each row the `Deduplicator` lets through, against the export's sync state
    (pure: keys, fingerprints and notes in, notes out)."""

    def __init__(self, prior: sync.SyncState, mode: sync.SyncMode, tagging: bool) -> None:
        self.prior, self.mode, self.tagging = prior, mode, tagging
        # Fields are compared only against a state, and not by a full run (it sends every row): a
        # first run plans without fingerprinting its rows (its workers fingerprint what they send).
        self.compares_fields = len(prior) > 0 and mode is not sync.SyncMode.FULL
        self._classify = self._member = None
        self._bit = 0

    def start_segment(self, tag: str | None) -> None:
        """The next segment, whose contacts get `tag` (None: the export does not tag)."""
        tag = tag if self.tagging else None
        self._classify = sync.classifier(self.prior, tag)
        self._member = sync.membership_classifier(self.prior, tag) if tag else None
        self._bit = self.prior.tag_bit(tag)

    def row_class(self, key: int, fingerprint: int, note: Note | None) -> sync.RowClass:
        """The class of a row an incremental run would send or skip (for a preview): `note` is the
        Deduplicator's, None or TAG_ONLY (a contact an earlier segment delivers: only its tag counts)."""
        if note is Note.TAG_ONLY:
            return self._member(key) if self.tagging else sync.RowClass.UNCHANGED
        return self._classify(key, fingerprint)

    def note(self, key: int, fingerprint: int, note: Note | None) -> Note | None:
        """The note of a row: `note` is the Deduplicator's (None: the first row of its email in the run)."""
        if note is Note.TAG_ONLY:  # an earlier segment delivers the contact: only this segment's tag matters
            if not self.tagging:
                return Note.UNCHANGED
            if self.mode is sync.SyncMode.FULL:
                return Note.TAG_ONLY
            return Note.TAG_ONLY if self._member(key) is sync.RowClass.TAG_ONLY else Note.UNCHANGED
        if note is not None:
            return note
        row_class = self._classify(key, fingerprint)
        action = sync.action_for(self.mode, row_class)
        if action is sync.SyncAction.SKIP:
            return Note.UNCHANGED
        if action is sync.SyncAction.TAG:
            return Note.TAG
        if row_class is sync.RowClass.NEW:
            return None
        if self.mode is sync.SyncMode.FULL or not self.tagging:
            return Note.CHANGED_TAG if self.tagging else Note.CHANGED
        i = self.prior.find(key)
        return Note.CHANGED if self.prior.masks[i] & self._bit else Note.CHANGED_TAG


_SENDS = {None, Note.TAG_ONLY, Note.CHANGED, Note.CHANGED_TAG, Note.TAG}
_UPSERTS = {None, Note.CHANGED, Note.CHANGED_TAG}  # of the rows sent, those upserted
_TAGS = {None, Note.TAG_ONLY, Note.CHANGED_TAG, Note.TAG}  # and those tagged (when the export tags)
_CLASSIFIED = {None, Note.TAG_ONLY}  # the Deduplicator's notes of rows a run sends or skips (not rejects)


def plan(settings: Settings, store: RunStore, message: PlanMessage, me: str) -> None:
    run = store.get_run(message.run_id)
    if run.terminal:
        return
    if run.planned:
        outbox.flush(store, run, by=me)  # a redelivery sends what its first attempt decided; a duplicate nothing
        return
    run = ending.change_run(store, run.run_id, _mark_running).run
    saved = store.load_plan(run.run_id)
    if saved is None:
        outbox.flush(store, run, by=me)  # a redelivery sends the parts its first attempt queued
        try:
            computed = _compute(settings, store, run, message, me, store.load_parts(run.run_id))
        except parts.PartTaken as taken:
            log.info("%s; this planner enqueues nothing more", taken)
            return
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


def _compute(settings: Settings, store: RunStore, run: Run, message: PlanMessage, me: str,
             saved_parts: list[PlanPart]) -> Plan:
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
    if run.trigger is Trigger.DELETE:  # no segment to read: the finishing step takes the export's tags off
        return deletion.removal_plan(store, run, secrets.token_hex(8), me)

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

    stored = sync.SyncStateStore(store.container).load(run.export_id)
    prior = stored.state if stored else sync.SyncState.empty()
    requested = sync.SyncMode(run.requested_mode) if run.requested_mode else None
    mode = sync.resolve_mode(requested, run.trigger.value, stored.state if stored else None,
                             datetime.now(timezone.utc), run.export.full_resync_days)
    names = tuple(segment.name for segment, _ in chosen)
    tagging = run.export.tag_contacts
    # The state keeps tags by their Omnisend name: a renamed tag is a new one, the old one is retired.
    sync_tags = sync.run_tag_table(prior.tags, (run.export.tag_of(name) for name in names) if tagging else ())

    token = saved_parts[0].token if saved_parts else secrets.token_hex(8)  # the parts' decisions are reused
    decider = Deduplicator(connection.contact_limit)
    syncer = SyncDecider(prior, mode, tagging)
    collector = sync.PreviewCollector() if mode is sync.SyncMode.PREVIEW else None
    cutter = parts.PartCutter(tagging) if collector is None else None  # a preview queues nothing
    writer = parts.PartWriter(store, run.run_id, token, me, mode.value, tuple(sync_tags), saved_parts,
                              run.early_chunks)
    members_of: dict[str, array] = {}
    waves: list[tuple[PlannedChunk, ...]] = []
    rows = seq = 0
    try:
        for wave, (segment, bound) in enumerate(chosen):
            planned: list[PlannedChunk] = []
            syncer.start_segment(run.export.tag_of(segment.name))
            packer = ChunkPacker(settings.chunk_rows)
            with io_call("segments.plan", f"{container.container_name}/{segment.name}"):
                for chunk in segments.plan_chunks(container, segment, settings.chunk_rows):
                    decided = _notes_of_chunk(container, chunk, bound, decider, syncer, connection.contact_limit,
                                              collector)
                    for unit in packer.add(decided):
                        planned.append(_planned(store, run.run_id, token, seq, wave, unit))
                        rows += unit.chunk.row_count
                        seq += 1
                        part = cutter.add(planned[-1]) if cutter is not None and wave == 0 else None
                        if part is not None:
                            writer.write(*part)
            for unit in packer.finish():
                planned.append(_planned(store, run.run_id, token, seq, wave, unit))
                rows += unit.chunk.row_count
                seq += 1
            members = array("Q", decider.end_segment())
            if collector is None:
                store.write(paths.members(run.run_id, token, wave), members.tobytes())
            else:
                members_of[segment.name] = members
            waves.append(tuple(planned))
    except segments.SegmentError as exc:
        raise RunFailure(str(exc)) from exc
    if collector is not None:
        store.write_json(paths.preview(run.run_id, token), _preview(run, prior, collector, members_of).to_api())
    return Plan(token, me, names, rows, decider.tag_only_rows > 0, tuple(waves), mode.value, tuple(sync_tags))


def _preview(run: Run, prior: sync.SyncState, collector: sync.PreviewCollector,
             members: dict[str, array]) -> sync.PreviewReport:
    """What an incremental run would do, with the leavers it would untag and whether the gate would hold."""
    segment_tags = {name: run.export.tag_of(name) for name in members}
    removals = sync.plan_removals(prior, segment_tags, members, max_removal_percent=run.export.max_removal_percent)
    return collector.report(prior, removals)


def _planned(store: RunStore, run_id: str, token: str, seq: int, wave: int, unit: Decided) -> PlannedChunk:
    """A packed unit on record: counted here when it sends nothing (never enqueued), else its notes saved."""
    if unit.counted is not None:
        counts, rejects = unit.counted
        record(store, run_id, ChunkResult(seq, counts), rejects)
        return PlannedChunk(seq, wave, unit.chunk, False, counts)
    if unit.notes:
        store.write_json(paths.notes(run_id, token, seq), unit.notes)
    return PlannedChunk(seq, wave, unit.chunk, bool(unit.notes), sends=Sends(unit.upserts, unit.tagged))


def _notes_of_chunk(container, chunk: segments.Chunk, bound, decider: Deduplicator, syncer: SyncDecider,
                    limit: int | None, collector: sync.PreviewCollector | None = None) -> Decided:
    """The notes of a chunk's rows and how many it sends; when none, its counts and rejects too.
    With a preview's `collector`, nothing is sent: each row's class goes to the collector and the chunk
    is counted (rows not rejected count as unchanged)."""
    notes: dict[str, str] = {}
    rejects: list[Reject] = []
    sends = upserts = tagged = unchanged = count = 0
    with io_call("segments.read", f"{container.container_name}/{chunk.blob}"):
        rows = segments.read_chunk(container, chunk)
    for row in rows:
        count += 1
        mapped = mapping.map_row(bound, row)
        if not isinstance(mapped, mapping.MappedContact):
            rejects.append(mapped.reject(chunk.segment, chunk.blob, row.number))
            continue
        key = mapping.email_key(mapped.email)
        note = decider.note(key)
        fingerprint = sync.fingerprint(mapped.contact) if note is None and syncer.compares_fields else 0
        if collector is not None and note in _CLASSIFIED:
            row_class = syncer.row_class(key, fingerprint, note)
            collector.add(row_class, chunk.segment, row.number, mapped.email, chunk.blob)
            unchanged += 1
            continue
        note = syncer.note(key, fingerprint, note)
        if note in _SENDS:
            sends += 1
            if note in _UPSERTS:
                upserts += 1
            if syncer.tagging and note in _TAGS:
                tagged += 1
        elif note is Note.UNCHANGED:
            unchanged += 1
        else:
            rejects.append(Reject(chunk.segment, chunk.blob, row.number, *note_reject(note, mapped.email, set(), limit),
                                  mapped.email))
        if note is not None:
            notes[str(row.number)] = note.value
    if sends:
        return Decided(chunk, notes, sends, upserts=upserts, tagged=tagged)
    return Decided(chunk, notes, 0, (Counts(rows=count, rejected=len(rejects), unchanged=unchanged), rejects))
