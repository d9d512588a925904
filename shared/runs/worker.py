"""Delivering one chunk: read and map its rows, apply the planner's notes, send the contacts
(ChunkDelivery), record the result once and count it into the run.

One delivery at a time works on a chunk: it holds the chunk's claim, and every progress write is
conditional on its last one, so a duplicated message cannot send the chunk twice. A chunk whose
batches are not settled yet ends (`Waiting`) and comes back; when its batches are still unknown on the
connection's board, it looks before reading and mapping its rows again.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .. import documents, mapping, segments, storage, sync, telemetry
from ..blobstate import io_call
from ..omnisend import AuthenticationError, PermissionDeniedError
from ..rejects import Reject, RejectReason
from ..settings import Settings
from . import clients, ending, finisher, outbox, paths, results, untag
from .board import HOLD_WINDOWS, BatchBoard, ReadPace
from .delivery import ChunkDelivery, ChunkProgress, DeliveryOutcome
from .errors import Deferred, Held, RunFailure, Stopped, Waiting
from .messages import ChunkMessage, may_defer, may_wait
from .model import Counts, Note, Run, RunStatus
from .store import Claim, RunStore

log = logging.getLogger(__name__)

Reason = RejectReason


@dataclass
class MappedChunk:
    """A chunk's rows as its delivery sees them."""

    rows: int = 0
    rejects: list[Reject] = field(default_factory=list)
    contacts: dict[str, dict] = field(default_factory=dict)  # email -> ContactRequest, to upsert
    tag_only: set[str] = field(default_factory=set)  # emails that only get the segment tag
    row_of: dict[str, int] = field(default_factory=dict)
    new: set[str] = field(default_factory=set)  # upserted emails the export's sync state does not know
    untagged: set[str] = field(default_factory=set)  # upserted emails that carry the export's tag already
    unchanged: int = 0  # rows with nothing to send

    def tags(self, tag: str) -> dict[str, tuple[str, ...]]:
        """The tag call of every email that needs one."""
        return {email: (tag,) for email in (*self.contacts, *self.tag_only) if email not in self.untagged}

    def changes(self, sent: frozenset[str], bit: int) -> list[sync.ContactChange]:
        """What the delivery verified, for the sync state (bit: the segment tag's in the run's table)."""
        found = []
        for email in sent:
            key = mapping.email_key(email)
            if email in self.contacts:
                tagged = 0 if email in self.untagged else bit
                found.append(sync.ContactChange(key, sync.fingerprint(self.contacts[email]), tagged, email=email))
            elif email in self.tag_only and bit:
                found.append(sync.ContactChange(key, tagged=bit, email=email))
        return found


def note_reject(note: Note | None, email: str, unsent_earlier: set[int],
                limit: int | None) -> tuple[RejectReason, str] | None:
    """The reject a planner note makes of a valid row, if any (pure)."""
    if note is Note.DUPLICATE:
        return Reason.DUPLICATE, "the same email is on an earlier row of this run"
    if note is Note.LIMIT:
        return Reason.CONTACT_LIMIT, f"the connection's contact limit of {limit} is reached"
    if note is Note.TAG_ONLY and mapping.email_key(email) in unsent_earlier:
        return Reason.DUPLICATE, "the same email is in an earlier segment of this run, where it was not sent"
    return None


class ChunkSession:
    """The delivery's session: progress saved under the chunk's claim; stops once the run has ended."""

    def __init__(self, store: RunStore, run_id: str, claim: Claim) -> None:
        self.store, self.run_id, self.claim = store, run_id, claim

    def save(self, progress: ChunkProgress) -> None:
        self.claim.save(progress.to_dict())

    def check(self) -> None:
        if self.store.get_run(self.run_id).terminal:
            raise Stopped(f"run {self.run_id} has ended")
        self.claim.keep_alive()


def process_chunk(settings: Settings, store: RunStore, message: ChunkMessage, me: str) -> None:
    run = store.get_run(message.run_id)
    if results.exists(store, run.run_id, message.seq):
        _count(store, run.run_id, message.seq, me)  # a redelivery after the result was written
        return
    if run.terminal:
        return  # cancelled or failed: queued chunks do nothing further
    try:
        documents.DocumentStore(settings).get_export(run.export_id)
    except documents.DocumentNotFoundError:
        ending.cancel_run(store, run.run_id, "cancelled: the export was deleted")
        return
    owner = message.owner or me  # a chunk that has started carries its owner when it comes back
    connection = clients.connection_of(settings, run)
    board = _board(settings, store, run, message, connection, owner)
    if message.owner is None:
        _hold_for_tags(board, run, connection)
    claim = Claim(store, run.run_id, message.step, owner)
    progress = ChunkProgress.from_dict(claim.acquire())
    try:
        outcome, mapped, rate_limited = _deliver(settings, store, run, message, claim, progress, connection, board)
    except Stopped:
        log.info("run %s chunk %d stopped: the run ended meanwhile", run.run_id, message.seq)
        return
    except Waiting as wait:
        raise Waiting(finisher.look_again(run, wait.delay), wait.reason) from None
    for reason, problems in ((Reason.OMNISEND_REJECTED, outcome.rejected), (Reason.FAILED, outcome.failed)):
        for email, detail in problems.items():
            mapped.rejects.append(Reject(message.chunk.segment, message.chunk.blob, mapped.row_of[email],
                                                 reason, detail, email))
    mapped.rejects.sort(key=lambda r: r.row)
    added = len(outcome.sent & mapped.new)
    counts = Counts(rows=mapped.rows, sent=len(outcome.sent), rejected=len(mapped.rejects) - len(outcome.failed),
                    failed=len(outcome.failed), added=added, updated=len(outcome.sent) - added,
                    unchanged=mapped.unchanged)
    unsent = sorted(mapping.email_key(e) for e in (*outcome.rejected, *outcome.failed))
    result = results.ChunkResult(message.seq, counts, unsent, rate_limited)
    changes = mapped.changes(outcome.sent, _tag_bit(run, message.chunk.segment))
    log_bytes = sync.encode_changes(changes) if changes else None
    if not results.record(store, run.run_id, result, mapped.rejects, log_bytes):
        result = None  # another delivery's result is on record: count that one
    _count(store, run.run_id, message.seq, me, result)


def _board(settings: Settings, store: RunStore, run: Run, message: ChunkMessage, connection: documents.Connection,
           owner: str) -> BatchBoard:
    """The chunk's view of its connection's batch board, with the connection's client. A chunk that
    tags its contacts once its batches settle, and one in its run's tail, ask for reads sooner (board.ReadPace)."""
    return BatchBoard(store, connection.id, owner, clients.client_for(settings, connection),
                      ReadPace.of(clients.budgets(connection)["general"], tail=finisher.in_tail(run)),
                      urgent=run.export.tag_of(message.chunk.segment) is not None, chunk=(run.run_id, message.seq))


def _deliver(settings: Settings, store: RunStore, run: Run, message: ChunkMessage, claim: Claim,
             progress: ChunkProgress, connection: documents.Connection,
             board: BatchBoard) -> tuple[DeliveryOutcome, MappedChunk, int]:
    _wait_unless_settled(message, progress, board)
    mapped = _map(settings, store, run, message, connection.contact_limit)
    chunk = message.chunk
    tag = run.export.tag_of(chunk.segment)
    tags = mapped.tags(tag) if tag is not None else {}
    delivery = ChunkDelivery(
        client=board.client,
        contacts=mapped.contacts,
        tags_by_email=tags,
        tag_only=frozenset(mapped.tag_only),
        progress=progress,
        session=ChunkSession(store, run.run_id, claim),
        board=board,
    )
    try:
        outcome = delivery.run()
    except Waiting as wait:
        waited = time.time() - (progress.waiting_since or time.time())
        if may_wait(message, wait.delay, waited):
            raise
        reason = f"gave up after waiting {waited:.0f} s for Omnisend to finish: {wait.reason}"
        log.warning("run %s chunk %d %s", run.run_id, message.seq, reason)
        outcome = delivery.give_up(reason)
    except Deferred as deferred:
        if may_defer(message, deferred.delay):
            raise
        reason = f"gave up after {message.attempt} deferrals: {deferred.reason}"
        log.warning("run %s chunk %d %s", run.run_id, message.seq, reason)
        outcome = delivery.give_up(reason)
    except (AuthenticationError, PermissionDeniedError) as exc:
        raise RunFailure(f"Omnisend refused the connection's API key during the run: {exc}") from exc
    return outcome, mapped, progress.rate_limited


def _hold_for_tags(board: BatchBoard, run: Run, connection: documents.Connection) -> None:
    """A chunk yet to create its batches waits while its run owes HOLD_WINDOWS of tag calls
    (board.held_for_tags): upserts running ahead would keep the chunks that tag out of the workers."""
    if board.urgent:
        held = board.held_for_tags(clients.budgets(connection)["tags"])
        if held:
            raise Held(held, f"run {run.run_id} owes {HOLD_WINDOWS:g} windows of segment tag calls")


def _wait_unless_settled(message: ChunkMessage, progress: ChunkProgress, board: BatchBoard) -> None:
    """A chunk back from waiting whose batches are all still unknown waits again, before its rows are
    read and mapped (reading Omnisend itself if a read is due)."""
    waiting_on = progress.waiting_on
    if not waiting_on or progress.waiting_since is None:
        return
    found, delay = board.outcomes(waiting_on)
    if not found and may_wait(message, delay, time.time() - progress.waiting_since):
        raise Waiting(delay, f"{len(waiting_on)} Omnisend batches not settled yet")


def _map(settings: Settings, store: RunStore, run: Run, message: ChunkMessage, limit: int | None) -> MappedChunk:
    chunk = message.chunk
    notes: dict[str, str] = {}
    if message.notes:
        found = store.read_json(paths.notes(run.run_id, message.notes, message.seq))
        if found is None:
            raise LookupError(f"run {run.run_id}: the notes of chunk {message.seq} are missing")
        notes = found[0]
    unsent_earlier: set[int] = set()
    if Note.TAG_ONLY.value in notes.values():
        found = store.read_json(paths.unsent_before(run.run_id, message.wave))
        if found is None:
            raise LookupError(f"run {run.run_id}: wave {message.wave} was opened without its unsent list")
        unsent_earlier = set(found[0])
    bound = mapping.bind(mapping.FieldMapping.from_dict(run.export.mapping), chunk.columns, chunk.segment)
    container = storage.container(settings, settings.segments_container)
    mapped = MappedChunk()
    try:
        with io_call("segments.read", f"{container.container_name}/{chunk.blob}"):
            rows = segments.read_chunk(container, chunk)
        for row in rows:
            mapped.rows += 1
            contact = mapping.map_row(bound, row)
            if not isinstance(contact, mapping.MappedContact):
                mapped.rejects.append(contact.reject(chunk.segment, chunk.blob, row.number))
                continue
            text = notes.get(str(row.number))
            note = Note(text) if text else None
            reject = note_reject(note, contact.email, unsent_earlier, limit)
            if reject:
                mapped.rejects.append(Reject(chunk.segment, chunk.blob, row.number, *reject, contact.email))
                continue
            if note is Note.UNCHANGED:
                mapped.unchanged += 1
                continue
            if note in (Note.TAG_ONLY, Note.TAG):
                mapped.tag_only.add(contact.email)
            else:
                mapped.contacts[contact.email] = contact.contact
                if note is None:
                    mapped.new.add(contact.email)
                elif note is Note.CHANGED:
                    mapped.untagged.add(contact.email)
            mapped.row_of[contact.email] = row.number
    except segments.SegmentError as exc:
        raise RunFailure(str(exc)) from exc
    return mapped


def _tag_bit(run: Run, segment: str) -> int:
    """The bit of a segment's tag in the run's tag table (0 when the export does not tag)."""
    tag = run.export.tag_of(segment)
    if tag is None or tag not in run.sync_tags:
        return 0
    return 1 << run.sync_tags.index(tag)


def _count(store: RunStore, run_id: str, seq: int, me: str, result: results.ChunkResult | None = None) -> None:
    result = result or results.read(store, run_id, seq)
    if result is None:
        raise LookupError(f"run {run_id}: chunk {seq} has no result to count")
    run = outbox.settle(store, run_id, lambda run: finisher.count(run, seq, result.counts, result.rate_limited), me)
    if run.status in (RunStatus.CANCELLED, RunStatus.FAILED):
        # Counted after the run ended (it was sending when the run was cancelled): what it verified
        # landed in Omnisend, so it goes into the state the ending saved.
        untag.save_unfinished(store, run)


def fail_chunk(store: RunStore, message: ChunkMessage, me: str, detail: str) -> None:
    """Every row of a chunk that could not be delivered fails with `detail` (unless it has a result)."""
    chunk = message.chunk
    if not results.exists(store, message.run_id, message.seq):
        rejects = [Reject(chunk.segment, chunk.blob, chunk.first_row + i, Reason.FAILED, detail)
                   for i in range(chunk.row_count)]
        counts = Counts(rows=chunk.row_count, failed=chunk.row_count)
        if results.record(store, message.run_id, results.ChunkResult(message.seq, counts), rejects):
            telemetry.emit(telemetry.ChunkFailed(export_id=store.get_run(message.run_id).export_id,
                                                 run_id=message.run_id, chunk_seq=message.seq,
                                                 rows=chunk.row_count, reason=detail))
    _count(store, message.run_id, message.seq, me)
