"""The one place that owns run state: runs, their chunks and their outcomes, kept in blob storage.

Layout in the state container (ETag concurrency, no database):
  runs/<runId>/run.json            the Run document (counts, chunks done, status)
  runs/<runId>/plan.json           every chunk of the run, by wave (one wave per segment)
  runs/<runId>/notes/<seq>.json    rows the planner decided on: duplicates, contact limit, tag-only
  runs/<runId>/progress/<seq>.json what a chunk has done in Omnisend so far (resumable)
  runs/<runId>/results/<seq>.json  a chunk's final counts, written once (If-None-Match: *)
  runs/<runId>/rejects/<seq>.csv   a chunk's rejected and failed rows, with reasons
  runs/<runId>/members/<wave>.bin  the email keys of a segment, for removing its tag from leavers
  runs/<runId>/untag/<wave>.json   how many leavers lost a segment's tag, written once
  run-index/<exportId>/<newest-first key>   one empty marker per run, for listing
  active-runs/<exportId>.json      the export's run in progress, if any

Counts are only ever added from a chunk's result once (the run lists the chunks it has counted),
so a redelivered or duplicated queue message never double-counts.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import time
from array import array
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from . import documents, mapping, segments, storage
from .delivery import ChunkDelivery, ChunkProgress, Deferred, Stopped
from .omnisend import MAX_TAG_EMAILS, AuthenticationError, OmnisendClient, PermissionDeniedError, RateLimitedError
from .ratelimit import BlobRateLimiter, Budget
from .keystore import secret_store
from .settings import Settings

log = logging.getLogger(__name__)

TRIGGERS = ("schedule", "manual", "upload")
TERMINAL = frozenset({"succeeded", "partiallySucceeded", "failed", "cancelled", "skipped"})
# Planner notes on rows: why a valid row is not upserted by its chunk.
NOTE_DUPLICATE, NOTE_LIMIT, NOTE_TAG_ONLY = "duplicate", "limit", "tagOnly"


class RunNotFoundError(LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} does not exist")
        self.run_id = run_id


class RunInProgressError(Exception):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} of this export is still in progress")
        self.run_id = run_id


class RunFailure(Exception):
    """Ends the whole run as failed with this message (bad key, missing segment, unreadable input)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Counts:
    rows: int = 0
    sent: int = 0
    rejected: int = 0
    failed: int = 0

    def add(self, other: "Counts") -> None:
        self.rows += other.rows
        self.sent += other.sent
        self.rejected += other.rejected
        self.failed += other.failed


@dataclass
class Run:
    run_id: str
    export_id: str
    trigger: str
    export: dict  # what the run does, as the export said when it started (a PUT mid-run changes nothing)
    status: str = "queued"
    counts: Counts = field(default_factory=Counts)
    planned_rows: int = 0
    segment_names: list[str] = field(default_factory=list)  # as found in storage, one per wave
    wave_sizes: list[int] = field(default_factory=list)
    waves_enqueued: int = 0
    chunks_done: list[int] = field(default_factory=list)
    untag_pending: list[int] | None = None  # waves whose leavers still lose the tag; None: not started
    untagged: int = 0  # contacts whose segment tag was removed because they left the segment
    started_at: str = field(default_factory=_now)
    finished_at: str | None = None
    error: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def chunk_count(self) -> int:
        return sum(self.wave_sizes)

    @property
    def progress(self) -> float:
        if self.status in ("succeeded", "partiallySucceeded"):
            return 1.0
        if not self.planned_rows:
            return 0.0
        # Every row counted is not the end: leavers may still be losing their tags.
        done = self.counts.rows / self.planned_rows
        return round(min(done, 1.0 if self.terminal else 0.99), 4)

    def to_api(self) -> dict:
        body = {
            "runId": self.run_id,
            "exportId": self.export_id,
            "trigger": self.trigger,
            "status": self.status,
            "counts": asdict(self.counts),
            "progress": self.progress,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }
        if self.export.get("tagContacts"):
            body["untagged"] = self.untagged
        if self.error:
            body["error"] = self.error
        return body

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Run":
        data = dict(data)
        data["counts"] = Counts(**data["counts"])
        return cls(**data)


@dataclass(frozen=True)
class ChunkResult:
    seq: int
    counts: Counts
    unsent_keys: list[int]  # emails of this chunk that did not reach Omnisend (for later tag-only rows)

    def to_json(self) -> str:
        return json.dumps({"seq": self.seq, "counts": asdict(self.counts), "unsentKeys": self.unsent_keys})

    @classmethod
    def from_json(cls, text: bytes | str) -> "ChunkResult":
        data = json.loads(text)
        return cls(data["seq"], Counts(**data["counts"]), data["unsentKeys"])


# --------------------------------------------------------------------------- state store


class RunStore:
    """Blob access for run state; every read-modify-write goes through ETags."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.container: ContainerClient = storage.container(settings, settings.state_container)

    def ensure(self) -> None:
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass

    def read(self, path: str) -> tuple[bytes, str] | None:
        try:
            download = self.container.get_blob_client(path).download_blob()
        except ResourceNotFoundError:
            return None
        return download.readall(), download.properties.etag

    def write(self, path: str, data: bytes | str, *, etag: str | None = None, create_only: bool = False) -> bool:
        """Write; False when the condition failed (someone else wrote first)."""
        blob = self.container.get_blob_client(path)
        try:
            if create_only:
                blob.upload_blob(data, overwrite=False)
            elif etag:
                blob.upload_blob(data, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified)
            else:
                blob.upload_blob(data, overwrite=True)
        except (ResourceExistsError, ResourceModifiedError):
            return False
        return True

    def delete(self, path: str, *, etag: str | None = None) -> None:
        kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            self.container.get_blob_client(path).delete_blob(**kwargs)
        except (ResourceNotFoundError, ResourceModifiedError):
            pass

    def load_run(self, run_id: str) -> tuple[Run, str]:
        found = self.read(f"runs/{run_id}/run.json") if _valid_run_id(run_id) else None
        if found is None:
            raise RunNotFoundError(run_id)
        return Run.from_dict(json.loads(found[0])), found[1]

    def save_run(self, run: Run, etag: str | None) -> bool:
        body = json.dumps(run.to_dict())
        return self.write(f"runs/{run.run_id}/run.json", body, etag=etag, create_only=etag is None)

    def update_run(self, run_id: str, change) -> Run:
        """Apply `change(run)` (returns False to leave the run as it is) until the write wins."""
        while True:
            run, etag = self.load_run(run_id)
            if change(run) is False:
                return run
            if self.save_run(run, etag):
                return run


def _valid_run_id(run_id: str) -> bool:
    return 0 < len(run_id) <= 64 and all(c.isalnum() or c == "-" for c in run_id)


def _new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def _index_key(run_id: str) -> str:
    return f"{(2**63 - time.time_ns()):020d}-{run_id}"


# --------------------------------------------------------------------------- starting and reading runs


def start_run(settings: Settings, export: documents.Export, trigger: str) -> Run:
    """Record a run of `export` and queue its planning. A run already in progress: manual triggers
    raise RunInProgressError; scheduled and upload triggers record a `skipped` run saying why."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    store = RunStore(settings)
    store.ensure()
    run = Run(
        run_id=_new_run_id(),
        export_id=export.id,
        trigger=trigger,
        export={
            "connectionId": export.connection_id,
            "segments": list(export.segments),
            "mapping": dict(export.mapping),
            "tagContacts": bool(export.tag_contacts),
        },
    )
    active = _claim_active(store, export.id, run.run_id)
    if active:
        if trigger == "manual":
            raise RunInProgressError(active)
        run.status, run.finished_at = "skipped", _now()
        run.error = f"skipped: run {active} of this export is still in progress"
    store.save_run(run, None)
    store.write(f"run-index/{export.id}/{_index_key(run.run_id)}", b"")
    if not run.terminal:
        _enqueue(settings, [{"kind": "plan", "runId": run.run_id}])
    log.info("run %s of export %s: %s (%s)", run.run_id, export.id, run.status, trigger)
    return run


def get_run(settings: Settings, run_id: str) -> Run:
    return RunStore(settings).load_run(run_id)[0]


def list_runs(settings: Settings, export_id: str, limit: int = 50) -> list[Run]:
    store = RunStore(settings)
    runs = []
    for blob in store.container.list_blobs(name_starts_with=f"run-index/{export_id}/"):
        run_id = blob.name.rsplit("/", 1)[1].split("-", 1)[1]
        try:
            runs.append(store.load_run(run_id)[0])
        except RunNotFoundError:
            continue
        if len(runs) >= limit:
            break
    return runs


def cancel_run(settings: Settings, run_id: str, reason: str = "cancelled by a user") -> Run:
    store = RunStore(settings)

    def cancel(run: Run) -> bool:
        if run.terminal:
            return False
        run.status, run.finished_at = "cancelled", _now()
        run.error = f"{reason}; {max(0, run.planned_rows - run.counts.rows)} planned rows were not processed"
        return True

    run = store.update_run(run_id, cancel)
    _release_active(store, run.export_id, run.run_id)
    return run


def cancel_export_runs(settings: Settings, export_id: str) -> None:
    store = RunStore(settings)
    found = store.read(f"active-runs/{export_id}.json")
    if found:
        cancel_run(settings, json.loads(found[0])["runId"], "cancelled: the export was deleted")


def rejects_csv(settings: Settings, run_id: str) -> bytes:
    """Every rejected and failed row of the run, as one CSV (header once), in chunk order."""
    store = RunStore(settings)
    store.load_run(run_id)
    header = (",".join(mapping.REJECTS_CSV_HEADER) + "\r\n").encode()
    parts = [header]
    for blob in sorted(store.container.list_blobs(name_starts_with=f"runs/{run_id}/rejects/"), key=lambda b: b.name):
        body = store.container.get_blob_client(blob.name).download_blob().readall()
        parts.append(body[len(header):] if body.startswith(header) else body)
    return b"".join(parts)


def start_scheduled_runs(settings: Settings) -> list[Run]:
    exports = documents.DocumentStore(settings).list_exports()
    return [start_run(settings, e, "schedule") for e in exports if "schedule" in e.run_on]


def start_runs_for_upload(settings: Settings, blob_path: str) -> list[Run]:
    """A rewritten model.json or a new plain CSV starts the exports of the segments it affects."""
    container = storage.container(settings, settings.segments_container)
    affected = set(segments.segments_affected_by_blob(container, blob_path))
    if not affected:
        return []
    exports = documents.DocumentStore(settings).list_exports()
    return [
        start_run(settings, e, "upload")
        for e in exports
        if "upload" in e.run_on and affected.intersection(e.segments)
    ]


# --------------------------------------------------------------------------- the export lock


def _claim_active(store: RunStore, export_id: str, run_id: str) -> str | None:
    """Make `run_id` the export's run in progress; return the other run's id if one is."""
    path = f"active-runs/{export_id}.json"
    body = json.dumps({"runId": run_id})
    while True:
        if store.write(path, body, create_only=True):
            return None
        found = store.read(path)
        if found is None:
            continue
        other = json.loads(found[0])["runId"]
        try:
            if not store.load_run(other)[0].terminal:
                return other
        except RunNotFoundError:
            pass  # a run that was never recorded holds nothing
        if store.write(path, body, etag=found[1]):
            return None


def _release_active(store: RunStore, export_id: str, run_id: str) -> None:
    path = f"active-runs/{export_id}.json"
    found = store.read(path)
    if found and json.loads(found[0])["runId"] == run_id:
        store.delete(path, etag=found[1])


# --------------------------------------------------------------------------- queue messages


def _enqueue(settings: Settings, messages: Iterable[dict], delay: int = 0) -> None:
    queue = storage.queue(settings, settings.export_queue)
    for message in messages:
        data = json.dumps(message, separators=(",", ":")).encode()
        try:
            queue.send_message(data, visibility_timeout=delay or None)
        except ResourceNotFoundError:
            queue.create_queue()
            queue.send_message(data, visibility_timeout=delay or None)


def process_message(settings: Settings, body: bytes) -> None:
    """One queue message: plan a run, or deliver one chunk. Deferred work is re-enqueued with a delay."""
    message = json.loads(body)
    try:
        if message["kind"] == "plan":
            _plan(settings, message["runId"])
        elif message["kind"] == "untag":
            _untag_leavers(settings, message["runId"], message["wave"])
        else:
            _process_chunk(settings, message)
    except (Deferred, RateLimitedError) as exc:
        wait = exc.delay if isinstance(exc, Deferred) else exc.retry_after
        delay = int(min(600, max(1, math.ceil(wait))))
        log.info("run %s message %s deferred %d s: %s", message["runId"], message.get("seq", "plan"), delay, exc)
        _enqueue(settings, [message], delay=delay)
    except RunFailure as failure:
        _fail(settings, message["runId"], str(failure))


def fail_poisoned_message(settings: Settings, body: bytes) -> None:
    """A message that failed every delivery attempt: mark what it holds as failed so the run ends."""
    message = json.loads(body)
    run_id = message["runId"]
    store = RunStore(settings)
    if message["kind"] == "plan":
        _fail(settings, run_id, f"planning failed on every attempt: {_last_error(store, run_id, 'plan')}")
        return
    if message["kind"] == "untag":
        _record_untagged(settings, run_id, message["wave"], 0,
                         f"removing the tag from leavers failed: {_last_error(store, run_id, 'untag')}")
        return
    seq = message["seq"]
    existing = store.read(f"runs/{run_id}/results/{seq}.json")
    if existing is None:
        chunk = segments.Chunk.from_dict(message["chunk"])
        detail = f"gave up after repeated errors: {_last_error(store, run_id, seq)}"
        rejects = [
            mapping.Reject(chunk.segment, chunk.blob, chunk.first_row + i, mapping.RejectReason.FAILED, detail)
            for i in range(chunk.row_count)
        ]
        counts = Counts(rows=chunk.row_count, failed=chunk.row_count)
        _record_result(store, run_id, ChunkResult(seq, counts, []), rejects)
    _merge(settings, run_id, seq)


# --------------------------------------------------------------------------- planning


def _plan(settings: Settings, run_id: str) -> None:
    store = RunStore(settings)
    run, _ = store.load_run(run_id)
    if run.terminal or run.wave_sizes:
        return  # cancelled meanwhile, or a redelivered plan message
    try:
        _plan_run(settings, store, run)
    except (Deferred, RateLimitedError, RunFailure):
        raise
    except Exception as exc:
        _remember_error(store, run_id, "plan", exc)
        raise


def _plan_run(settings: Settings, store: RunStore, run: Run) -> None:
    run_id = run.run_id
    store.update_run(run_id, lambda r: setattr(r, "status", "running") if r.status == "queued" else False)
    connection = _connection(settings, run)
    client = _client(settings, connection)
    try:
        client.check_key()
    except (AuthenticationError, PermissionDeniedError) as exc:
        raise RunFailure(f"Omnisend rejected the API key of connection {connection.display_name!r}: {exc}") from exc

    container = storage.container(settings, settings.segments_container)
    field_mapping = mapping.FieldMapping.from_dict(run.export["mapping"])
    chosen = []
    for name in run.export["segments"]:
        try:
            segment = segments.get_segment(container, name)
            chosen.append((segment, mapping.bind(field_mapping, segment.columns, segment.name)))
        except (segments.SegmentError, mapping.MappingError) as exc:
            raise RunFailure(str(exc)) from exc

    planner = _Planner(store, run_id, connection.contact_limit)
    try:
        for wave, (segment, bound) in enumerate(chosen):
            planner.plan_segment(container, wave, segment, bound, settings.chunk_rows)
    except segments.SegmentError as exc:
        raise RunFailure(str(exc)) from exc

    plan = {"waves": planner.waves}
    store.write(f"runs/{run_id}/plan.json", json.dumps(plan))
    # Tag-only rows must wait until the segment that upserts their contact is done; without any,
    # every wave can go at once.
    sequential = planner.tag_only_rows > 0
    first_waves = 1 if sequential else len(planner.waves)

    def planned(r: Run) -> bool:
        if r.terminal or r.wave_sizes:
            return False
        r.planned_rows = planner.rows
        r.segment_names = [segment.name for segment, _ in chosen]
        r.wave_sizes = [len(w) for w in planner.waves]
        r.waves_enqueued = first_waves
        return True

    run = store.update_run(run_id, planned)
    log.info("run %s planned: %d rows in %d chunks", run_id, planner.rows, run.chunk_count)
    if run.terminal:
        return
    if run.chunk_count == 0:
        _merge(settings, run_id, None)
        return
    _enqueue(settings, [m for wave in planner.waves[:first_waves] for m in wave])


class _Planner:
    """One pass over every row in run order: chunks, plus notes on rows that must not be upserted."""

    def __init__(self, store: RunStore, run_id: str, contact_limit: int | None) -> None:
        self.store, self.run_id, self.contact_limit = store, run_id, contact_limit
        self.waves: list[list[dict]] = []
        self.rows = 0
        self.tag_only_rows = 0
        self._earlier: set[int] = set()   # email keys of earlier segments
        self._limited: set[int] = set()   # email keys past the contact limit
        self._unique = 0

    def plan_segment(self, container, wave: int, segment, bound, rows_per_chunk: int) -> None:
        current: set[int] = set()
        messages: list[dict] = []
        seq = sum(len(w) for w in self.waves)
        for chunk in segments.plan_chunks(container, segment, rows_per_chunk):
            notes: dict[str, str] = {}
            for row in segments.read_chunk(container, chunk):
                mapped = mapping.map_row(bound, row)
                if not isinstance(mapped, mapping.MappedContact):
                    continue
                key = mapping.email_key(mapped.email)
                if key in self._limited:
                    notes[str(row.number)] = NOTE_LIMIT
                elif key in current:
                    notes[str(row.number)] = NOTE_DUPLICATE
                elif key in self._earlier:
                    notes[str(row.number)] = NOTE_TAG_ONLY
                    self.tag_only_rows += 1
                    current.add(key)
                else:
                    self._unique += 1
                    if self.contact_limit is not None and self._unique > self.contact_limit:
                        self._limited.add(key)
                        notes[str(row.number)] = NOTE_LIMIT
                    else:
                        current.add(key)
            if notes:
                self.store.write(f"runs/{self.run_id}/notes/{seq}.json", json.dumps(notes))
            messages.append(
                {"kind": "chunk", "runId": self.run_id, "seq": seq, "wave": wave,
                 "hasNotes": bool(notes), "chunk": chunk.to_dict()}
            )
            self.rows += chunk.row_count
            seq += 1
        self._earlier |= current
        self.waves.append(messages)
        members = array("Q", sorted(current))
        self.store.write(f"runs/{self.run_id}/members/{wave}.bin", members.tobytes())


# --------------------------------------------------------------------------- delivering a chunk


def _process_chunk(settings: Settings, message: dict) -> None:
    store = RunStore(settings)
    run_id, seq = message["runId"], message["seq"]
    run, _ = store.load_run(run_id)
    if store.read(f"runs/{run_id}/results/{seq}.json") is not None:
        _merge(settings, run_id, seq)  # a redelivery after the result was written
        return
    if run.terminal:
        return  # cancelled or failed: queued chunks do nothing further
    try:
        documents.DocumentStore(settings).get_export(run.export_id)
    except documents.DocumentNotFoundError:
        cancel_run(settings, run_id, "cancelled: the export was deleted")
        return
    try:
        _deliver_chunk(settings, store, run, message)
    except Stopped:
        log.info("run %s chunk %s stopped: the run ended meanwhile", run_id, seq)
        return
    except (Deferred, RunFailure):
        raise
    except Exception as exc:
        _remember_error(store, run_id, seq, exc)
        raise
    _merge(settings, run_id, seq)


def _deliver_chunk(settings: Settings, store: RunStore, run: Run, message: dict) -> None:
    run_id, seq = run.run_id, message["seq"]
    chunk = segments.Chunk.from_dict(message["chunk"])
    notes = json.loads(store.read(f"runs/{run_id}/notes/{seq}.json")[0]) if message["hasNotes"] else {}
    unsent_earlier = _unsent_keys(store, run_id, message["wave"]) if NOTE_TAG_ONLY in notes.values() else set()
    bound = mapping.bind(mapping.FieldMapping.from_dict(run.export["mapping"]), chunk.columns, chunk.segment)
    connection = _connection(settings, run)

    rejects: list[mapping.Reject] = []
    contacts: dict[str, dict] = {}
    rows_of: dict[str, int] = {}
    tag_only: set[str] = set()
    rows = 0
    container = storage.container(settings, settings.segments_container)
    try:
        for row in segments.read_chunk(container, chunk):
            rows += 1
            mapped = mapping.map_row(bound, row)
            if not isinstance(mapped, mapping.MappedContact):
                rejects.append(mapping.Reject(chunk.segment, chunk.blob, row.number, mapped.reason, mapped.detail))
                continue
            note = notes.get(str(row.number))
            reject = _note_reject(note, mapped.email, unsent_earlier, connection.contact_limit)
            if reject:
                rejects.append(mapping.Reject(chunk.segment, chunk.blob, row.number, reject[0], reject[1], mapped.email))
                continue
            if note == NOTE_TAG_ONLY:
                tag_only.add(mapped.email)
            else:
                contacts[mapped.email] = mapped.contact
            rows_of[mapped.email] = row.number
    except segments.SegmentError as exc:
        raise RunFailure(str(exc)) from exc

    tags = {email: (chunk.segment,) for email in (*contacts, *tag_only)} if run.export["tagContacts"] else {}
    found = store.read(f"runs/{run_id}/progress/{seq}.json")
    progress = ChunkProgress.from_dict(json.loads(found[0])) if found else ChunkProgress()
    delivery = ChunkDelivery(
        client=_client(settings, connection),
        contacts=contacts,
        tags_by_email=tags,
        tag_only=frozenset(tag_only),
        progress=progress,
        save=lambda p: store.write(f"runs/{run_id}/progress/{seq}.json", json.dumps(p.to_dict())),
        still_wanted=lambda: not store.load_run(run_id)[0].terminal,
    )
    try:
        outcome = delivery.run()
    except (AuthenticationError, PermissionDeniedError) as exc:
        raise RunFailure(f"Omnisend refused the connection's API key during the run: {exc}") from exc

    for reason, problems in ((mapping.RejectReason.OMNISEND_REJECTED, outcome.rejected),
                             (mapping.RejectReason.FAILED, outcome.failed)):
        for email, detail in problems.items():
            rejects.append(mapping.Reject(chunk.segment, chunk.blob, rows_of[email], reason, detail, email))
    rejects.sort(key=lambda r: r.row)
    unsent = sorted(mapping.email_key(e) for e in (*outcome.rejected, *outcome.failed))
    counts = Counts(rows=rows, sent=len(outcome.sent), rejected=len(rejects) - len(outcome.failed),
                    failed=len(outcome.failed))
    _record_result(store, run_id, ChunkResult(seq, counts, unsent), rejects)


def _note_reject(note: str | None, email: str, unsent_earlier: set[int], limit: int | None):
    if note == NOTE_DUPLICATE:
        return mapping.RejectReason.DUPLICATE, "the same email is on an earlier row of this run"
    if note == NOTE_LIMIT:
        return mapping.RejectReason.CONTACT_LIMIT, f"the connection's contact limit of {limit} is reached"
    if note == NOTE_TAG_ONLY and mapping.email_key(email) in unsent_earlier:
        return mapping.RejectReason.DUPLICATE, "the same email is in an earlier segment of this run, where it was not sent"
    return None


def _record_result(store: RunStore, run_id: str, result: ChunkResult, rejects: list) -> None:
    # Rejects first, result last: a result on record means its rejects are too.
    if rejects:
        store.write(f"runs/{run_id}/rejects/{result.seq:06d}.csv", mapping.rejects_to_csv(rejects))
    store.write(f"runs/{run_id}/results/{result.seq}.json", result.to_json(), create_only=True)


def _remember_error(store: RunStore, run_id: str, step: int | str, exc: Exception) -> None:
    """Keep the error of a failed attempt (a chunk's seq, or "plan") for the poison handler to report."""
    path = f"runs/{run_id}/progress/{step}.json"
    found = store.read(path)
    progress = ChunkProgress.from_dict(json.loads(found[0])) if found else ChunkProgress()
    progress.last_error = f"{type(exc).__name__}: {exc}"[:500]
    store.write(path, json.dumps(progress.to_dict()))


def _last_error(store: RunStore, run_id: str, step: int | str) -> str:
    found = store.read(f"runs/{run_id}/progress/{step}.json")
    error = ChunkProgress.from_dict(json.loads(found[0])).last_error if found else ""
    return error or "see the function logs"


def _unsent_keys(store: RunStore, run_id: str, wave: int) -> set[int]:
    found = store.read(f"runs/{run_id}/unsent-before-{wave}.json")
    return set(json.loads(found[0])) if found else set()


# --------------------------------------------------------------------------- counting and finishing


def _merge(settings: Settings, run_id: str, seq: int | None) -> None:
    """Count a chunk's result into its run once; open the next wave or finish the run when due."""
    result = None
    if seq is not None:
        result = ChunkResult.from_json(RunStore(settings).read(f"runs/{run_id}/results/{seq}.json")[0])

    def count(run: Run) -> bool:
        if result is None or result.seq in run.chunks_done:
            return result is None  # counted before: nothing to do
        run.counts.add(result.counts)
        run.chunks_done.append(result.seq)
        return True

    _update_and_advance(settings, run_id, count)


def _update_and_advance(settings: Settings, run_id: str, change) -> None:
    """Apply `change` to the run, then open what is due: the next wave, the removal of the tag from
    leavers, or the run's end. Messages go out before the run is saved: a crash in between leads to
    a redelivery that opens the step again (duplicate messages are harmless), never to a step left
    unopened."""
    store = RunStore(settings)
    changed = False

    def change_and_advance(run: Run) -> bool:
        nonlocal changed
        changed = False  # of this attempt: an earlier one may have lost the race
        if change(run) is False:
            return False
        due = _advance(store, run)
        if due:
            _enqueue(settings, due)
        changed = True
        return True

    run = store.update_run(run_id, change_and_advance)
    if changed and run.terminal:
        _release_active(store, run.export_id, run.run_id)
        log.info("run %s %s: %s, %d untagged", run_id, run.status, asdict(run.counts), run.untagged)


def _advance(store: RunStore, run: Run) -> list[dict]:
    due: list[dict] = []
    # A wave opens once every chunk enqueued so far is counted; an empty wave opens the next.
    while not run.terminal and set(range(sum(run.wave_sizes[: run.waves_enqueued]))) <= set(run.chunks_done):
        if run.waves_enqueued < len(run.wave_sizes):
            due += _open_wave(store, run)
        elif run.export["tagContacts"] and run.untag_pending is None:
            run.untag_pending = list(range(len(run.wave_sizes)))
            due += [{"kind": "untag", "runId": run.run_id, "wave": w} for w in run.untag_pending]
        elif not run.untag_pending:
            partial = run.counts.rejected or run.counts.failed or run.error
            run.status = "partiallySucceeded" if partial else "succeeded"
            run.finished_at = _now()
        else:
            break  # waiting for the leavers of some segments to lose the tag
    return due


def _open_wave(store: RunStore, run: Run) -> list[dict]:
    """Before a later segment's tag-only rows go out, record which emails earlier waves did not send."""
    wave = run.waves_enqueued
    unsent: set[int] = set()
    for done_seq in range(sum(run.wave_sizes[:wave])):
        unsent.update(ChunkResult.from_json(store.read(f"runs/{run.run_id}/results/{done_seq}.json")[0]).unsent_keys)
    store.write(f"runs/{run.run_id}/unsent-before-{wave}.json", json.dumps(sorted(unsent)))
    run.waves_enqueued += 1
    plan = json.loads(store.read(f"runs/{run.run_id}/plan.json")[0])
    return plan["waves"][wave]


# --------------------------------------------------------------------------- contacts that left a segment


def _untag_leavers(settings: Settings, run_id: str, wave: int) -> None:
    """Remove segment S's tag from every Omnisend contact tagged S that is no longer in S.

    Membership is the segment as read by this run (every valid email of it, sent or not), so a row
    that failed to send never costs its contact the tag. A segment with no valid email removes no tag:
    an empty input is far likelier a broken export or mapping than an empty segment."""
    store = RunStore(settings)
    run, _ = store.load_run(run_id)
    if run.terminal or wave not in (run.untag_pending or []):
        return
    segment = run.segment_names[wave]
    members = array("Q")
    members.frombytes(store.read(f"runs/{run_id}/members/{wave}.bin")[0])
    if not members:
        _record_untagged(settings, run_id, wave, 0, None)
        return
    member_keys = set(members)
    client = _client(settings, _connection(settings, run))
    try:
        leavers = [c["email"] for c in client.iter_contacts(tag=segment)
                   if c.get("email") and mapping.email_key(c["email"]) not in member_keys]
        for start in range(0, len(leavers), MAX_TAG_EMAILS):
            if store.load_run(run_id)[0].terminal:
                return
            client.remove_tags(leavers[start:start + MAX_TAG_EMAILS], [segment])
    except (AuthenticationError, PermissionDeniedError) as exc:
        raise RunFailure(f"Omnisend refused the connection's API key during the run: {exc}") from exc
    except (RateLimitedError, RunFailure):
        raise
    except Exception as exc:
        _remember_error(store, run_id, "untag", exc)
        raise
    log.info("run %s: %d contacts left segment %s and lost its tag", run_id, len(leavers), segment)
    _record_untagged(settings, run_id, wave, len(leavers), None)


def _record_untagged(settings: Settings, run_id: str, wave: int, untagged: int, error: str | None) -> None:
    def record(run: Run) -> bool:
        if wave not in (run.untag_pending or []):
            return False
        run.untag_pending.remove(wave)
        run.untagged += untagged
        if error:
            run.error = error  # every row is accounted for by its chunk; the run ends partially succeeded
        return True

    _update_and_advance(settings, run_id, record)


def _fail(settings: Settings, run_id: str, error: str) -> None:
    store = RunStore(settings)

    def fail(run: Run) -> bool:
        if run.terminal:
            return False
        run.status, run.finished_at, run.error = "failed", _now(), error
        return True

    run = store.update_run(run_id, fail)
    _release_active(store, run.export_id, run.run_id)
    log.warning("run %s failed: %s", run_id, error)


# --------------------------------------------------------------------------- connections and clients


def _connection(settings: Settings, run: Run) -> documents.Connection:
    try:
        return documents.DocumentStore(settings).get_connection(run.export["connectionId"])
    except documents.DocumentNotFoundError as exc:
        raise RunFailure(f"connection {run.export['connectionId']} no longer exists") from exc


_clients: dict[str, tuple[str, float, OmnisendClient]] = {}
_KEY_CACHE_SECONDS = 300.0


def _client(settings: Settings, connection: documents.Connection) -> OmnisendClient:
    """One pooled client per connection and process; the key is re-read from the vault every 5 minutes."""
    cached = _clients.get(connection.id)
    if cached and time.monotonic() - cached[1] < _KEY_CACHE_SECONDS:
        return cached[2]
    try:
        api_key = secret_store(settings).get(connection.secret_name)
    except Exception as exc:
        raise RunFailure(f"the API key of connection {connection.display_name!r} could not be read: {exc}") from exc
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()
    if cached and cached[0] == fingerprint:
        _clients[connection.id] = (fingerprint, time.monotonic(), cached[2])
        return cached[2]
    state = storage.container(settings, settings.state_container)
    limiter = BlobRateLimiter(
        state,
        connection.id,
        {"general": Budget(connection.requests_per_minute), "tags": Budget(connection.tag_requests_per_minute)},
    )
    client = OmnisendClient(api_key, base_url=settings.omnisend_api_url, limiter=limiter)
    if cached:
        cached[2].close()
    _clients[connection.id] = (fingerprint, time.monotonic(), client)
    return client
