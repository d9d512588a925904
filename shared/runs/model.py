"""What a run is: its status and counts, the export as it was when the run started, and where the
run stands (planned waves, counted chunks, steps decided but not yet queued)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any

from .. import documents, segments
from ..blobstate import parse_utc, utc_now, utc_text


class RunStatus(str, Enum):
    """A run's status; the values are what the API shows."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_SUCCEEDED = "partiallySucceeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class Trigger(str, Enum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    UPLOAD = "upload"
    DELETE = "delete"  # DELETE /exports/{id}?removeTags=true: the export's tags leave Omnisend, then the export goes


@dataclass
class Counts:
    """rows = sent + unchanged + rejected + failed; sent = added + updated."""

    rows: int = 0
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    added: int = 0  # sent, new to the export's sync state
    updated: int = 0  # sent, known to the state (fields changed, or only a tag to add)
    unchanged: int = 0  # nothing to send: no request

    def add(self, other: "Counts") -> None:
        for name in _COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _COUNT_FIELDS}

    @classmethod
    def from_dict(cls, data: dict) -> "Counts":
        return cls(**{name: int(data.get(name, 0)) for name in _COUNT_FIELDS})


_COUNT_FIELDS = ("rows", "sent", "rejected", "failed", "added", "updated", "unchanged")


@dataclass(frozen=True)
class ExportSnapshot:
    """What the run does, as its export said when the run started (a PUT mid-run changes nothing)."""

    connection_id: str
    segments: tuple[str, ...]
    mapping: dict[str, str] = field(hash=False)  # a FieldMapping as its camelCase dict
    tag_contacts: bool
    tags: dict[str, str] = field(default_factory=dict, hash=False)  # segment -> tag, where not its name
    max_removal_percent: float = documents.DEFAULT_MAX_REMOVAL_PERCENT
    full_resync_days: int = documents.DEFAULT_FULL_RESYNC_DAYS

    @classmethod
    def of(cls, export: documents.Export) -> "ExportSnapshot":
        return cls(export.connection_id, tuple(export.segments), dict(export.mapping), bool(export.tag_contacts),
                   dict(export.tags), float(export.max_removal_percent), int(export.full_resync_days))

    def tag_of(self, segment: str) -> str | None:
        """The segment's tag (its `tags` entry, else its name); None when the export does not tag."""
        return documents.segment_tag(self.tags, segment) if self.tag_contacts else None

    def to_dict(self) -> dict[str, Any]:
        return {"connectionId": self.connection_id, "segments": list(self.segments),
                "mapping": dict(self.mapping), "tagContacts": self.tag_contacts, "tags": dict(self.tags),
                "maxRemovalPercent": self.max_removal_percent, "fullResyncDays": self.full_resync_days}

    @classmethod
    def from_dict(cls, data: dict) -> "ExportSnapshot":
        # Runs started before the sync settings carry none: the defaults.
        return cls(data["connectionId"], tuple(data["segments"]), dict(data["mapping"]), bool(data["tagContacts"]),
                   dict(data.get("tags", {})),
                   float(data.get("maxRemovalPercent", documents.DEFAULT_MAX_REMOVAL_PERCENT)),
                   int(data.get("fullResyncDays", documents.DEFAULT_FULL_RESYNC_DAYS)))


class Note(str, Enum):
    """Why the planner keeps a valid row from being upserted by its chunk."""

    DUPLICATE = "duplicate"  # the same email is on an earlier row of the same segment
    LIMIT = "limit"  # past the connection's contact limit
    TAG_ONLY = "tagOnly"  # an earlier segment upserts this email: this row only adds its tag
    # From the export's sync state (no note: a new contact, upserted and tagged):
    CHANGED = "changed"  # fields changed, the tag is set already: upsert only
    CHANGED_TAG = "changedTag"  # fields changed (or a full run), the tag too: upsert and tag
    TAG = "tag"  # fields as last sent, the tag not yet set: only the tag call
    UNCHANGED = "unchanged"  # nothing to send: no request

    @property
    def upserts(self) -> bool:
        return self in (Note.CHANGED, Note.CHANGED_TAG)


@dataclass(frozen=True)
class Sends:
    """What a planned chunk sends: rows upserted, and rows that get a segment tag (a row may be both)."""

    upserts: int
    tagged: int


@dataclass(frozen=True)
class PlannedChunk:
    seq: int
    wave: int
    chunk: segments.Chunk
    has_notes: bool
    counted: Counts | None = None  # nothing to send: the planner recorded its result, no message goes out
    sends: Sends | None = None  # None in plans saved before it was kept

    def to_dict(self) -> dict[str, Any]:
        body = {"seq": self.seq, "wave": self.wave, "chunk": self.chunk.to_dict(), "hasNotes": self.has_notes}
        if self.counted is not None:
            body["counted"] = self.counted.to_dict()
        if self.sends is not None:
            body["sends"] = {"upserts": self.sends.upserts, "tagged": self.sends.tagged}
        return body

    @classmethod
    def from_dict(cls, data: dict) -> "PlannedChunk":
        counted = data.get("counted")
        sends = data.get("sends")
        return cls(int(data["seq"]), int(data["wave"]), segments.Chunk.from_dict(data["chunk"]), bool(data["hasNotes"]),
                   None if counted is None else Counts.from_dict(counted),
                   None if sends is None else Sends(int(sends["upserts"]), int(sends["tagged"])))


@dataclass(frozen=True)
class Plan:
    """Every chunk of a run, by wave (one wave per segment), as the planner saved it once."""

    token: str  # names the planner's notes and member files
    by: str  # the delivery that planned: a redelivery of it finishes what it started
    segment_names: tuple[str, ...]
    rows: int
    sequential: bool  # tag-only rows wait for earlier segments: one wave at a time
    waves: tuple[tuple[PlannedChunk, ...], ...]
    mode: str = "incremental"  # the sync mode the run goes in (shared.sync.SyncMode)
    sync_tags: tuple[str, ...] = ()  # the run's tag table (shared.sync.run_tag_table): bits of its changes

    @property
    def first_waves(self) -> int:
        """Waves to open at once: one when later waves hold tag-only rows, else all of them."""
        return min(1, len(self.waves)) if self.sequential else len(self.waves)

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "by": self.by, "segmentNames": list(self.segment_names), "rows": self.rows,
                "sequential": self.sequential, "waves": [[c.to_dict() for c in wave] for wave in self.waves],
                "mode": self.mode, "syncTags": list(self.sync_tags)}

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        return cls(data["token"], data["by"], tuple(data["segmentNames"]), int(data["rows"]),
                   bool(data["sequential"]),
                   tuple(tuple(PlannedChunk.from_dict(c) for c in wave) for wave in data["waves"]),
                   data.get("mode", "incremental"), tuple(data.get("syncTags", ())))


@dataclass(frozen=True)
class PlanPart:
    """Chunks of the first wave queued while the rest of the run is still being planned (the `index`-th
    part, written once). The whole plan holds them again, with the same sequence numbers."""

    token: str  # the plan's token: the whole plan reuses it
    by: str
    index: int
    chunks: tuple[PlannedChunk, ...]
    mode: str
    sync_tags: tuple[str, ...]
    ahead: tuple[int, int] = (0, 0)  # (upserts, tag calls) the parts before this one send: for the stagger

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "by": self.by, "index": self.index, "chunks": [c.to_dict() for c in self.chunks],
                "mode": self.mode, "syncTags": list(self.sync_tags), "ahead": list(self.ahead)}

    @classmethod
    def from_dict(cls, data: dict) -> "PlanPart":
        upserts, tags = data.get("ahead", (0, 0))
        return cls(data["token"], data["by"], int(data["index"]),
                   tuple(PlannedChunk.from_dict(c) for c in data["chunks"]), data["mode"],
                   tuple(data.get("syncTags", ())), (int(upserts), int(tags)))


class StepKind(str, Enum):
    PLAN = "plan"
    PART = "part"  # the chunk messages of plan parts [start, stop), queued before the plan is whole
    WAVE = "wave"  # the chunk messages of waves [start, stop)
    UNTAG = "untag"  # the finishing step (one message): owned tags off leavers, the sync state replaced
    APPROVE = "approve"  # held removals approved: the tag off those still carrying it, the state replaced


@dataclass(frozen=True)
class Due:
    """Messages a step decided to send, kept on the run until they are in the queue (an outbox
    entry): a crash between deciding and sending leaves them on record, so they are sent again."""

    kind: StepKind
    start: int = 0
    stop: int = 0
    by: str = ""  # the delivery that decided them: it sends them; others only once they look abandoned
    at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "start": self.start, "stop": self.stop, "by": self.by, "at": self.at}

    @classmethod
    def from_dict(cls, data: dict) -> "Due":
        return cls(StepKind(data["kind"]), int(data["start"]), int(data["stop"]), data["by"], data["at"])


@dataclass(frozen=True)
class HeldRemoval:
    """A tag's removals the gate held: more leavers than maxRemovalPercent of the contacts carrying it
    once the run tagged its segment (members + leavers). Their email keys are kept beside the run
    (`paths.held`, the `index`-th file) for an approval."""

    tag: str
    leavers: int  # contacts that left the segment and keep the tag until approved
    carriers: int  # contacts the export had tagged before the run
    members: int  # distinct valid emails of the segment in the run
    percent: float  # leavers / (members + leavers), in percent
    reason: str

    def to_api(self) -> dict[str, Any]:
        return {"tag": self.tag, "leavers": self.leavers, "carriers": self.carriers, "members": self.members,
                "percent": self.percent, "reason": self.reason}

    def to_dict(self) -> dict[str, Any]:
        return self.to_api()

    @classmethod
    def from_dict(cls, data: dict) -> "HeldRemoval":
        return cls(str(data["tag"]), int(data["leavers"]), int(data["carriers"]), int(data["members"]),
                   float(data["percent"]), str(data["reason"]))


def held_reason(held: list[HeldRemoval], max_percent: float) -> str:
    """Why a run kept tags it would have removed, in one sentence."""
    return (f"tag removals over maxRemovalPercent ({max_percent:g}%) are held until someone approves them "
            f"(POST /api/runs/{{runId}}/approve-removals): " + "; ".join(h.reason for h in held))


class ApprovalStatus(str, Enum):
    APPLYING = "applying"  # approved; the removals are being applied (a queued step under the export lock)
    APPLIED = "applied"  # removed, and the sync state replaced without those tags
    FAILED = "failed"  # could not be applied (see `error`); may be approved again


@dataclass(frozen=True)
class Approval:
    """Who approved a run's held removals, when, and how far applying them got."""

    by: str
    at: str
    status: ApprovalStatus = ApprovalStatus.APPLYING
    removed: int = 0  # contacts that lost a held tag
    finished_at: str | None = None
    error: str | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"by": self.by, "at": self.at, "status": self.status.value, "removed": self.removed}
        if self.finished_at:
            body["finishedAt"] = self.finished_at
        if self.error:
            body["error"] = self.error
        return body

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "at": self.at, "status": self.status.value, "removed": self.removed,
                "finished_at": self.finished_at, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict) -> "Approval":
        return cls(str(data["by"]), str(data["at"]), ApprovalStatus(data.get("status", "applying")),
                   int(data.get("removed", 0)), data.get("finished_at"), data.get("error"))


@dataclass
class Run:
    run_id: str
    export_id: str
    trigger: Trigger
    export: ExportSnapshot
    status: RunStatus = RunStatus.QUEUED
    counts: Counts = field(default_factory=Counts)
    planned_rows: int = 0
    segment_names: list[str] = field(default_factory=list)  # as found in storage, one per wave
    wave_sizes: list[int] = field(default_factory=list)  # chunks per wave; empty until planned
    plan_token: str | None = None  # names the planner's notes and member files (see paths)
    waves_opened: int = 0  # waves whose chunk messages were decided (they are in the queue or the outbox)
    early_chunks: int = 0  # first-wave chunks (seqs 0..n-1) queued from plan parts before the plan was whole
    early_at: str | None = None  # when the first part's chunks were queued: the wave's stagger counts from then
    chunks_done: list[int] = field(default_factory=list)  # chunks counted into `counts`, each once
    untag_pending: list[int] | None = None  # waves whose leavers still lose the tag; None: not started
    untagged: int = 0  # contacts whose segment tag was removed because they left the segment
    removals_held: list[HeldRemoval] = field(default_factory=list)  # over maxRemovalPercent: not applied
    removals_approved: Approval | None = None  # someone approved the held removals (applying or applied)
    removals_planned: int = 0  # a `delete` run: tag removals (contact, tag) its finishing step makes
    removals_done: int = 0  # ... and how many of them are done so far (its progress)
    mode: str = "incremental"  # the sync mode the run went in (set when planned)
    requested_mode: str | None = None  # the mode its starter asked for (None: the planner decides)
    sync_tags: list[str] = field(default_factory=list)  # the run's tag table (set when planned)
    rate_limited: int = 0  # Omnisend 429 answers and spent budgets the run's work was deferred for
    redrives: int = 0  # times the watchdog re-sent the run's missing messages
    outbox: list[Due] = field(default_factory=list)
    started_at: str = field(default_factory=utc_now)
    updated_at: str = ""  # set by the store on every write: the watchdog's measure of progress
    finished_at: str | None = None
    error: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    @property
    def applying_removals(self) -> bool:
        """An approval of held removals is being applied: the run holds its export's lock meanwhile."""
        return self.removals_approved is not None and self.removals_approved.status is ApprovalStatus.APPLYING

    @property
    def planned(self) -> bool:
        return self.plan_token is not None

    @property
    def chunk_count(self) -> int:
        return sum(self.wave_sizes)

    @property
    def opened_chunks(self) -> range:
        """Sequence numbers of the chunks of every opened wave (and of the plan parts queued before)."""
        return range(max(sum(self.wave_sizes[: self.waves_opened]), self.early_chunks))

    @property
    def progress(self) -> float:
        if self.status in (RunStatus.SUCCEEDED, RunStatus.PARTIALLY_SUCCEEDED):
            return 1.0
        if self.trigger is Trigger.DELETE:  # no rows: how many of the export's tags are off
            done, total = self.removals_done, self.removals_planned
        else:
            done, total = self.counts.rows, self.planned_rows
        if not total:
            return 0.0
        # Every row counted is not the end: leavers may still be losing their tags.
        return round(min(done / total, 1.0 if self.terminal else 0.99), 4)

    def deadline(self, max_hours: int) -> str:
        """When the watchdog fails the run, and deferred work stops waiting."""
        return utc_text(parse_utc(self.started_at) + timedelta(hours=max_hours))

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "runId": self.run_id,
            "exportId": self.export_id,
            "trigger": self.trigger.value,
            "mode": self.mode if self.planned else (self.requested_mode or self.mode),
            "status": self.status.value,
            "counts": self.counts.to_dict(),
            "progress": self.progress,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }
        if self.export.tag_contacts or self.trigger is Trigger.DELETE:
            body["untagged"] = max(self.untagged, self.removals_done)
        if self.removals_held:
            body["removalsHeld"] = {"reason": held_reason(self.removals_held, self.export.max_removal_percent),
                                    "maxRemovalPercent": self.export.max_removal_percent,
                                    "tags": [held.to_api() for held in self.removals_held]}
        if self.removals_approved is not None:
            body["removalsApproved"] = self.removals_approved.to_api()
        if self.error:
            body["error"] = self.error
        return body

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "export_id": self.export_id, "trigger": self.trigger.value,
            "export": self.export.to_dict(), "status": self.status.value, "counts": self.counts.to_dict(),
            "planned_rows": self.planned_rows, "segment_names": list(self.segment_names),
            "wave_sizes": list(self.wave_sizes), "plan_token": self.plan_token, "waves_opened": self.waves_opened,
            "early_chunks": self.early_chunks, "early_at": self.early_at,
            "chunks_done": list(self.chunks_done),
            "untag_pending": None if self.untag_pending is None else list(self.untag_pending),
            "untagged": self.untagged, "removals_held": [held.to_dict() for held in self.removals_held],
            "removals_approved": None if self.removals_approved is None else self.removals_approved.to_dict(),
            "removals_planned": self.removals_planned, "removals_done": self.removals_done,
            "mode": self.mode, "requested_mode": self.requested_mode, "sync_tags": list(self.sync_tags),
            "rate_limited": self.rate_limited, "redrives": self.redrives,
            "outbox": [due.to_dict() for due in self.outbox],
            "started_at": self.started_at, "updated_at": self.updated_at, "finished_at": self.finished_at,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Run":
        return cls(
            run_id=data["run_id"], export_id=data["export_id"], trigger=Trigger(data["trigger"]),
            export=ExportSnapshot.from_dict(data["export"]), status=RunStatus(data["status"]),
            counts=Counts.from_dict(data["counts"]), planned_rows=data.get("planned_rows", 0),
            segment_names=list(data.get("segment_names", [])), wave_sizes=list(data.get("wave_sizes", [])),
            plan_token=data.get("plan_token"), waves_opened=data.get("waves_opened", 0),
            early_chunks=data.get("early_chunks", 0), early_at=data.get("early_at"),
            chunks_done=list(data.get("chunks_done", [])), untag_pending=data.get("untag_pending"),
            untagged=data.get("untagged", 0),
            removals_held=[HeldRemoval.from_dict(d) for d in data.get("removals_held") or []],
            removals_approved=Approval.from_dict(data["removals_approved"]) if data.get("removals_approved") else None,
            removals_planned=data.get("removals_planned", 0), removals_done=data.get("removals_done", 0),
            mode=data.get("mode", "incremental"), requested_mode=data.get("requested_mode"),
            sync_tags=list(data.get("sync_tags", [])), rate_limited=data.get("rate_limited", 0),
            redrives=data.get("redrives", 0), outbox=[Due.from_dict(d) for d in data.get("outbox", [])],
            started_at=data["started_at"], updated_at=data.get("updated_at", ""),
            finished_at=data.get("finished_at"), error=data.get("error"),
        )
