"""The run engine's queue messages, as typed values with their JSON form.

Every message carries its run's deadline and how many times it was deferred (`attempt`): a deferred
message is a new queue message, so the queue's own dequeue count starts again; these two fields are
what bounds deferred work. A chunk or untag message sent again by the delivery that holds the step
names it as `owner`, so the deferred message takes its own step back at once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import ClassVar, Union

from .. import segments
from ..blobstate import parse_utc
from .errors import MessageError

# How many times one piece of work may be deferred (429s, spent budgets, batches still running)
# before it gives up with the last reason. The run's deadline bounds it as well.
MAX_DEFERRALS = 60
# How long a chunk may wait for Omnisend to finish its batches (it ends and comes back meanwhile).
MAX_BATCH_WAIT_SECONDS = 1800.0


class MessageKind(str, Enum):
    PLAN = "plan"
    CHUNK = "chunk"
    UNTAG = "untag"
    APPROVE = "approve"


@dataclass(frozen=True)
class PlanMessage:
    kind: ClassVar[MessageKind] = MessageKind.PLAN
    run_id: str
    deadline: str
    attempt: int = 0

    @property
    def step(self) -> str:
        return "plan"

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "runId": self.run_id, "deadline": self.deadline, "attempt": self.attempt}


@dataclass(frozen=True)
class ChunkMessage:
    kind: ClassVar[MessageKind] = MessageKind.CHUNK
    run_id: str
    seq: int
    wave: int
    chunk: segments.Chunk
    deadline: str
    notes: str | None = None  # the plan token when the planner left notes on rows of this chunk
    attempt: int = 0
    owner: str | None = None

    @property
    def step(self) -> str:
        return str(self.seq)

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "runId": self.run_id, "seq": self.seq, "wave": self.wave,
                "chunk": self.chunk.to_dict(), "notes": self.notes, "deadline": self.deadline,
                "attempt": self.attempt, "owner": self.owner}


@dataclass(frozen=True)
class UntagMessage:
    kind: ClassVar[MessageKind] = MessageKind.UNTAG
    run_id: str
    wave: int
    deadline: str
    attempt: int = 0
    owner: str | None = None

    @property
    def step(self) -> str:
        return f"untag-{self.wave}"

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "runId": self.run_id, "wave": self.wave, "deadline": self.deadline,
                "attempt": self.attempt, "owner": self.owner}


@dataclass(frozen=True)
class ApproveMessage:
    """Apply a run's approved removals (its deadline: RUN_MAX_HOURS after the approval)."""

    kind: ClassVar[MessageKind] = MessageKind.APPROVE
    run_id: str
    deadline: str
    attempt: int = 0
    owner: str | None = None

    @property
    def step(self) -> str:
        return "approve"

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "runId": self.run_id, "deadline": self.deadline, "attempt": self.attempt,
                "owner": self.owner}


Message = Union[PlanMessage, ChunkMessage, UntagMessage, ApproveMessage]


def to_json(message: Message) -> bytes:
    return json.dumps(message.to_dict(), separators=(",", ":")).encode()


def deferred(message: Message, owner: str | None = None) -> Message:
    """The message to send again when its work must wait: one more attempt, held by `owner`."""
    if isinstance(message, PlanMessage):
        return replace(message, attempt=message.attempt + 1)
    return replace(message, attempt=message.attempt + 1, owner=owner)


def waiting(message: ChunkMessage, owner: str) -> ChunkMessage:
    """The message that brings a waiting chunk back: the same attempt, held by `owner`."""
    return replace(message, owner=owner)


def may_wait(message: Message, delay: float, waited: float, now: datetime | None = None) -> bool:
    """Whether a chunk that has waited `waited` seconds for its batches may wait `delay` more."""
    now = now or datetime.now(timezone.utc)
    return waited + delay <= MAX_BATCH_WAIT_SECONDS and now + timedelta(seconds=delay) < parse_utc(message.deadline)


def may_defer(message: Message, delay: float, now: datetime | None = None) -> bool:
    """Whether the work of `message` may wait `delay` seconds more, or must give up now."""
    now = now or datetime.now(timezone.utc)
    return message.attempt + 1 <= MAX_DEFERRALS and now + timedelta(seconds=delay) < parse_utc(message.deadline)


def parse(body: bytes | str) -> Message:
    try:
        data = json.loads(body)
        kind = MessageKind(data["kind"])
        run_id, deadline, attempt = str(data["runId"]), str(data["deadline"]), int(data.get("attempt", 0))
        if kind is MessageKind.PLAN:
            return PlanMessage(run_id, deadline, attempt)
        if kind is MessageKind.APPROVE:
            return ApproveMessage(run_id, deadline, attempt, data.get("owner"))
        if kind is MessageKind.UNTAG:
            return UntagMessage(run_id, int(data["wave"]), deadline, attempt, data.get("owner"))
        return ChunkMessage(run_id, int(data["seq"]), int(data["wave"]), segments.Chunk.from_dict(data["chunk"]),
                            deadline, data.get("notes"), attempt, data.get("owner"))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MessageError(f"not a run engine message ({type(error).__name__}: {error})") from None
