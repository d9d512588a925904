"""Exactly-once starts (shared/schedule/_claim.py) against Azurite: two timer instances firing
together claim each (export, due time) once; the cursor never moves back."""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from shared.schedule import (
    CLAIMS_PREFIX, Schedule, advance_cursor, claim_blob_name, claim_due_run, due, read_cursor,
)
from shared.storage import container

UTC = timezone.utc


@pytest.fixture()
def state(settings):
    client = container(settings, settings.state_container)
    client.create_container()
    return client


def timer_instance(state, schedules: dict[str, Schedule], now: datetime, barrier: threading.Barrier,
                   name: str) -> list[tuple[str, datetime]]:
    """One timer invocation as the wiring step will write it: read the cursor, decide what is due,
    claim it, advance the cursor. Returns what this instance started."""
    cursor = read_cursor(state)
    barrier.wait()  # both instances read the same cursor, then race
    started = []
    for export_id, schedule in schedules.items():
        due_at = due(schedule, cursor.last_checked or now - timedelta(minutes=5), now)
        if due_at is not None and claim_due_run(state, export_id, due_at, now=now, claimed_by=name):
            started.append((export_id, due_at))
    advance_cursor(state, cursor, now)
    return started


def test_two_timers_firing_together_start_each_due_run_once(state):
    schedules = {
        "vip": Schedule.parse("0 0 6 * * *", "Europe/Vilnius"),
        "in-the-gap": Schedule.parse("30 3 * * *", "Europe/Vilnius"),  # 03:30 does not exist on 2025-03-30
        "newsletter": Schedule.parse("0 6 * * Mon", "Europe/Vilnius"),
        "hourly": Schedule.parse("0 * * * *", "America/New_York"),
    }
    started: list[tuple[str, datetime]] = []
    tick = datetime(2025, 3, 29, 22, tzinfo=UTC)  # across Vilnius's spring-forward night
    with ThreadPoolExecutor(2) as pool:
        while tick <= datetime(2025, 3, 31, 4, tzinfo=UTC):  # two instances fire on every 15-minute tick
            barrier = threading.Barrier(2)
            results = list(pool.map(lambda n: timer_instance(state, schedules, tick, barrier, n), ("a", "b")))
            started += results[0] + results[1]
            tick += timedelta(minutes=15)
    assert len(started) == len(set(started))  # never twice
    by_export = {name: sorted(at for export, at in started if export == name) for name in schedules}
    assert by_export["vip"] == [datetime(2025, 3, 30, 3, tzinfo=UTC), datetime(2025, 3, 31, 3, tzinfo=UTC)]
    assert by_export["in-the-gap"] == [datetime(2025, 3, 30, 1, tzinfo=UTC), datetime(2025, 3, 31, 0, 30, tzinfo=UTC)]
    assert by_export["newsletter"] == [datetime(2025, 3, 31, 3, tzinfo=UTC)]
    assert by_export["hourly"] == [datetime(2025, 3, 29, 22, tzinfo=UTC) + timedelta(hours=h) for h in range(31)]


def test_a_claim_is_created_once_and_says_who_and_when(state):
    due_at = datetime(2025, 1, 1, 6, tzinfo=UTC)
    now = datetime(2025, 1, 1, 6, 2, 30, tzinfo=UTC)
    barrier = threading.Barrier(8)

    def claim(n: int) -> bool:
        barrier.wait()
        return claim_due_run(state, "export-1", due_at, now=now, claimed_by=f"instance-{n}")

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(claim, range(8)))
    assert outcomes.count(True) == 1
    name = claim_blob_name("export-1", due_at)
    assert name == f"{CLAIMS_PREFIX}export-1/20250101T060000Z.json"
    body = json.loads(state.download_blob(name).readall())
    assert body["exportId"] == "export-1" and body["dueAt"] == "2025-01-01T06:00:00Z"
    assert body["claimedAt"] == "2025-01-01T06:02:30Z" and body["claimedBy"] == f"instance-{outcomes.index(True)}"
    # another due time of the same export, or the same time of another export, is a new claim
    assert claim_due_run(state, "export-1", due_at + timedelta(days=1), now=now)
    assert claim_due_run(state, "export-2", due_at, now=now)


def test_claims_refuse_unsafe_ids_and_naive_times(state):
    with pytest.raises(ValueError, match="not a valid id"):
        claim_due_run(state, "../other", datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(TypeError, match="timezone-aware"):
        claim_due_run(state, "export-1", datetime(2025, 1, 1))


def test_the_cursor_only_moves_forward_and_a_stale_writer_loses(state):
    assert read_cursor(state).last_checked is None
    first = read_cursor(state)
    t1, t2 = datetime(2025, 1, 1, 6, tzinfo=UTC), datetime(2025, 1, 1, 6, 5, tzinfo=UTC)
    assert advance_cursor(state, first, t1)
    assert not advance_cursor(state, first, t2)  # created meanwhile by someone else
    current = read_cursor(state)
    assert current.last_checked == t1
    assert not advance_cursor(state, current, t1)  # not later
    assert advance_cursor(state, current, t2)
    assert not advance_cursor(state, current, t2 + timedelta(minutes=5))  # its ETag is stale now
    assert read_cursor(state).last_checked == t2
