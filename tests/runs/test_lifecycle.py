"""Starting, listing and cancelling runs; the export lock; scheduled starts (shared/runs/lifecycle.py, lock.py)."""
from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from shared import documents, runs, schedule, storage
from shared.runs import lifecycle, lock
from shared.runs.store import RunStore
from tests.runs.conftest import clean_segment, counts
from tests.runs.faults import FaultPlan


def test_a_scheduled_run_is_skipped_while_one_is_in_progress(api_settings, export_of, segments_container, pump):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    first = runs.start_run(api_settings, export, "manual")

    with pytest.raises(runs.RunInProgressError) as refused:
        runs.start_run(api_settings, export, "manual")
    skipped = runs.start_scheduled_runs(api_settings, now=first_due(api_settings, export))

    assert refused.value.run_id == first.run_id
    assert [(r.status, r.trigger) for r in skipped] == [("skipped", "schedule")]
    assert first.run_id in skipped[0].error
    assert counts(skipped[0]) == {"rows": 0, "sent": 0, "rejected": 0, "failed": 0}
    assert pump(first.run_id).status == "succeeded"
    assert [r.run_id for r in runs.list_runs(api_settings, export.id)] == [skipped[0].run_id, first.run_id]


class StartsAnotherRunFirst(FaultPlan):
    """Starts `second()` just before the first start records its run, i.e. after it took the lock."""

    def __init__(self, second) -> None:
        super().__init__(armed=False)
        self.second, self.outcome = second, None

    def before(self, op, target):
        super().before(op, target)
        if self.outcome is None and op == "write" and target.endswith("/run.json"):
            self.outcome = "started"
            try:
                self.outcome = self.second()
            except runs.RunInProgressError as refused:
                self.outcome = refused


@pytest.mark.parametrize("second_trigger", ["manual", "schedule"])
def test_of_two_simultaneous_starts_exactly_one_runs(api_settings, export_of, segments_container, second_trigger):
    """The lock used to be claimed before the run existed, and a second start that found a lock
    naming an unknown run took it over: both ran. Now the lock holds while the first run is recorded."""
    from shared import blobstate

    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    probe = StartsAnotherRunFirst(lambda: runs.start_run(api_settings, export, second_trigger))
    blobstate.install_probe(probe)
    try:
        first = runs.start_run(api_settings, export, "manual")
    finally:
        blobstate.install_probe(None)

    assert first.status == "queued"
    if second_trigger == "manual":
        assert isinstance(probe.outcome, runs.RunInProgressError) and probe.outcome.run_id == first.run_id
    else:
        assert probe.outcome.status == "skipped" and first.run_id in probe.outcome.error
    assert lock.read(RunStore(api_settings), export.id).run_id == first.run_id


def test_a_lock_whose_run_was_never_recorded_is_free_after_its_grace(api_settings, export_of, segments_container,
                                                                    monkeypatch):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    store = RunStore(api_settings)
    store.ensure()
    assert lock.claim(store, export.id, "20260101T000000-deadbeef") is None  # a start that died right after
    with pytest.raises(runs.RunInProgressError):
        runs.start_run(api_settings, export, "manual")

    monkeypatch.setattr(lock, "LOCK_GRACE", lock.LOCK_GRACE * 0)
    assert runs.start_run(api_settings, export, "manual").status == "queued"


def test_scheduled_starts_are_independent_per_export(api_settings, export_of, segments_container):
    """start_scheduled_runs stopped at the first export that raised."""
    clean_segment(segments_container, "Vip", 10)
    broken_lock, healthy = export_of(["Vip"]), export_of(["Vip"])
    state = storage.container(api_settings, api_settings.state_container)
    state.upload_blob(f"active-runs/{broken_lock.id}.json", b"not json")
    state.upload_blob("exports/unreadable.json", b'{"id": "unreadable"')

    started = runs.start_scheduled_runs(api_settings, now=first_due(api_settings, healthy))

    assert [(r.export_id, r.status) for r in started] == [(healthy.id, "queued")]


def test_cancelling_releases_the_export(api_settings, export_of, segments_container, pump):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    run = runs.start_run(api_settings, export, "manual")

    cancelled = runs.cancel_run(api_settings, run.run_id)

    assert cancelled.status == "cancelled" and cancelled.error.startswith("cancelled by a user")
    assert runs.start_run(api_settings, export, "manual").status == "queued"
    assert runs.cancel_run(api_settings, run.run_id).status == "cancelled"  # cancelling again changes nothing


def test_deleting_the_export_cancels_its_run(api_settings, export_of, segments_container):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    run = runs.start_run(api_settings, export, "manual")

    runs.cancel_export_runs(api_settings, export.id)

    assert runs.get_run(api_settings, run.run_id).error.startswith("cancelled: the export was deleted")
    assert lock.read(RunStore(api_settings), export.id) is None


def test_a_run_id_that_could_escape_its_folder_is_never_found(api_settings):
    for bad in ("../exports/x", "a/b", "", "x" * 65):
        with pytest.raises(runs.RunNotFoundError):
            runs.get_run(api_settings, bad)


# --- the schedule timer (start_scheduled_runs on a simulated clock: `now` passed explicitly) -------------

UTC = timezone.utc


def first_due(settings, export, after: timedelta = timedelta(minutes=1)):
    """A moment just after the export's first due time since it was saved (the timer's tick then)."""
    chosen = schedule.schedule_of(export, schedule.app_schedule(settings.export_schedule))
    return schedule.next_run_at(chosen, schedule.saved_at(export)) + after


def saved(settings, export, at: datetime, **changes) -> documents.Export:
    """The export as if saved at `at` (and with `changes`), stored."""
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    export = dataclasses.replace(export, created_at=stamp, updated_at=stamp, **changes)
    documents.DocumentStore(settings).put_export(export, if_match="*")
    return export


def scheduled_runs(settings, export) -> list[str]:
    """Run ids of the export's scheduled runs, oldest first."""
    return sorted(r.run_id for r in runs.list_runs(settings, export.id, limit=500) if r.trigger == "schedule")


def expected_runs(export, *due_times: datetime) -> list[str]:
    return sorted(schedule.scheduled_run_id(export.id, at) for at in due_times)


def tick_every(settings, start: datetime, end: datetime, step: timedelta, instances: int = 1) -> list[runs.Run]:
    """The timer firing every `step` from `start` to `end`; `instances` invocations fire together at each tick."""
    started: list[runs.Run] = []
    with ThreadPoolExecutor(instances) as pool:
        while start <= end:
            started += [run for found in pool.map(lambda _: runs.start_scheduled_runs(settings, now=start),
                                                  range(instances)) for run in found]
            start += step
    return started


def test_two_timers_firing_together_start_each_due_time_once(api_settings, export_of, segments_container,
                                                              monkeypatch):
    clean_segment(segments_container, "Vip", 10)
    origin = datetime(2026, 6, 1, 9, 7, tzinfo=UTC)
    hourly = saved(api_settings, export_of(["Vip"]), origin, schedule={"cron": "0 * * * *", "timeZone": "America/New_York"})
    half = saved(api_settings, export_of(["Vip"]), origin, schedule={"cron": "0 0,30 * * * *", "timeZone": "Asia/Kolkata"})
    read_cursor = schedule.read_cursor
    barrier = threading.Barrier(2)

    def both_read_the_cursor_then_race(container):
        cursor = read_cursor(container)
        barrier.wait(timeout=30)  # the two instances decide on the same cursor
        return cursor

    monkeypatch.setattr(schedule, "read_cursor", both_read_the_cursor_then_race)
    started = tick_every(api_settings, origin + timedelta(minutes=3), origin + timedelta(hours=2, minutes=3),
                         timedelta(minutes=20), instances=2)

    assert len({run.run_id for run in started}) == len(started)  # no instance reports another's run as its own
    at = lambda hour, minute=0: datetime(2026, 6, 1, hour, minute, tzinfo=UTC)  # noqa: E731
    assert scheduled_runs(api_settings, hourly) == expected_runs(hourly, at(10), at(11))
    # Kolkata is UTC+05:30: its :00 and :30 are UTC's :30 and :00. Ticks at 09:10, 09:30, ... 11:10.
    assert scheduled_runs(api_settings, half) == expected_runs(half, at(9, 30), at(10), at(10, 30), at(11))
    assert sorted(run.run_id for run in started) == sorted(scheduled_runs(api_settings, hourly)
                                                            + scheduled_runs(api_settings, half))


def test_a_timer_down_for_a_day_starts_the_export_once(api_settings, export_of, segments_container):
    clean_segment(segments_container, "Vip", 10)
    origin = datetime(2026, 6, 1, 9, 7, tzinfo=UTC)
    hourly = saved(api_settings, export_of(["Vip"]), origin, schedule={"cron": "0 * * * *", "timeZone": "UTC"})
    assert runs.start_scheduled_runs(api_settings, now=origin + timedelta(minutes=5)) == []

    back = origin + timedelta(days=1, minutes=10)  # 24 hourly times missed
    started = runs.start_scheduled_runs(api_settings, now=back)
    again = runs.start_scheduled_runs(api_settings, now=back + timedelta(minutes=5))

    assert [run.run_id for run in started] == expected_runs(hourly, datetime(2026, 6, 2, 9, tzinfo=UTC))
    assert again == [] and len(scheduled_runs(api_settings, hourly)) == 1


@pytest.mark.parametrize(("cron", "saved_at", "due_times"), [
    # Spring forward (2026-03-08): 02:30 does not exist in New York; it runs at 03:00 EDT, once.
    ("30 2 * * *", datetime(2026, 3, 7, 12, tzinfo=UTC),
     [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 3, 9, 6, 30, tzinfo=UTC)]),
    # Fall back (2026-11-01): 01:30 happens twice; it runs at the first (EDT), not again an hour later.
    ("30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC),
     [datetime(2026, 11, 1, 5, 30, tzinfo=UTC), datetime(2026, 11, 2, 6, 30, tzinfo=UTC)]),
], ids=["spring-forward", "fall-back"])
def test_a_daylight_saving_change_neither_skips_nor_doubles_a_run(api_settings, export_of, segments_container,
                                                                  cron, saved_at, due_times):
    clean_segment(segments_container, "Vip", 10)
    export = saved(api_settings, export_of(["Vip"]), saved_at, schedule={"cron": cron, "timeZone": "America/New_York"})

    tick_every(api_settings, saved_at + timedelta(minutes=5), saved_at + timedelta(days=2), timedelta(minutes=15))

    assert scheduled_runs(api_settings, export) == expected_runs(export, *due_times)


def test_an_export_without_a_schedule_follows_export_schedule_and_runon_still_decides(
        api_settings, export_of, segments_container):
    settings = dataclasses.replace(api_settings, export_schedule="0 0 2 * * *")
    clean_segment(segments_container, "Vip", 10)
    origin = datetime(2026, 6, 1, 1, 50, tzinfo=UTC)
    follows = saved(settings, export_of(["Vip"]), origin)
    own = saved(settings, export_of(["Vip"]), origin, schedule={"cron": "0 0 3 * * *", "timeZone": "UTC"})
    on_demand = saved(settings, export_of(["Vip"], run_on=()), origin)
    uploads_only = saved(settings, export_of(["Vip"], run_on=("upload",)), origin,
                         schedule={"cron": "0 0 2 * * *", "timeZone": "UTC"})

    started = runs.start_scheduled_runs(settings, now=datetime(2026, 6, 1, 2, 3, tzinfo=UTC))

    assert [run.run_id for run in started] == expected_runs(follows, datetime(2026, 6, 1, 2, tzinfo=UTC))
    assert [scheduled_runs(settings, e) for e in (own, on_demand, uploads_only)] == [[], [], []]


def test_a_start_that_died_after_its_claim_is_finished_by_the_next_tick(api_settings, export_of, segments_container):
    """The claim turns the other instance away; if its holder dies before recording the run, the
    due time would never run. The run id derived from (export, due time) lets the next tick see that."""
    clean_segment(segments_container, "Vip", 10)
    origin = datetime(2026, 6, 1, 9, 7, tzinfo=UTC)
    export = saved(api_settings, export_of(["Vip"]), origin, schedule={"cron": "0 * * * *", "timeZone": "UTC"})
    due_at, tick = datetime(2026, 6, 1, 10, tzinfo=UTC), datetime(2026, 6, 1, 10, 3, tzinfo=UTC)
    state = RunStore(api_settings).container
    cursor = schedule.read_cursor(state)
    assert schedule.claim_due_run(state, export.id, due_at, now=tick)  # ... and the claimer died here,
    assert schedule.advance_cursor(state, cursor, tick)  # while the other instance moved the cursor on

    repaired = tick_every(api_settings, tick + timedelta(minutes=5), tick + timedelta(minutes=15),
                          timedelta(minutes=5), instances=2)

    # Both instances may repair at once: each reports the one run, recorded once under the derived id.
    assert {run.run_id for run in repaired} == {schedule.scheduled_run_id(export.id, due_at)}
    assert scheduled_runs(api_settings, export) == expected_runs(export, due_at)
    assert lifecycle.FIRST_LOOK_BACK < timedelta(hours=1)  # an export saved long ago is not run on the first look
