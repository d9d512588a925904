"""Queue messages without storage: their JSON, deferral, and the bound on deferred work."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.blobstate import utc_text
from shared.runs import messages
from shared.runs.errors import MessageError
from shared.segments import Chunk, CsvFormat

CHUNK = Chunk("Vip", "Vip.csv", "0x1", 10, 200, 1, 100, ("EMail",), CsvFormat())
DEADLINE = "2026-01-01T06:00:00.000Z"


@pytest.mark.parametrize("message", [
    messages.PlanMessage("run-1", DEADLINE),
    messages.ChunkMessage("run-1", 3, 1, CHUNK, DEADLINE, notes="ab12", attempt=2, owner="m1"),
    messages.UntagMessage("run-1", 1, DEADLINE, attempt=1),
    messages.ApproveMessage("run-1", DEADLINE, attempt=3, owner="m2"),
])
def test_messages_round_trip_through_json(message):
    assert messages.parse(messages.to_json(message)) == message


def test_a_deferred_message_is_one_attempt_further_and_keeps_its_owner():
    message = messages.ChunkMessage("run-1", 3, 1, CHUNK, DEADLINE)
    again = messages.deferred(messages.deferred(message, owner="m1"), owner="m1")
    assert (again.attempt, again.owner, again.deadline) == (2, "m1", DEADLINE)


@pytest.mark.parametrize("attempt, deadline_hours, may", [(0, 1, True), (59, 1, True), (60, 1, False), (0, -1, False)])
def test_deferred_work_is_bounded_by_attempts_and_the_run_deadline(attempt, deadline_hours, may):
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    message = messages.PlanMessage("run", utc_text(now + timedelta(hours=deadline_hours)), attempt)
    assert messages.may_defer(message, 30, now) is may
    assert messages.MAX_DEFERRALS == 60


@pytest.mark.parametrize("body", [b"", b"[]", b'{"kind": "chunk", "runId": "r"}', b'{"kind": "dance"}', b"\xff"])
def test_anything_else_is_a_message_error(body):
    with pytest.raises(MessageError, match="not a run engine message"):
        messages.parse(body)
