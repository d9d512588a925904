"""When schedules are due (shared/schedule/_timing.py), on a simulated clock: once per due time, a
missed window once on recovery, daylight-saving changes in both directions neither skipping nor
doubling a run; checked against a minute-by-minute oracle."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from shared.schedule import (
    InvalidScheduleError, Schedule, app_schedule, due, effective_schedule, instant_of, latest_due, next_run_at,
)

UTC = timezone.utc
TICK = timedelta(minutes=5)


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def simulate_timer(schedule: Schedule, start: datetime, end: datetime, *, down: tuple = ()) -> list[tuple]:
    """A timer firing every 5 minutes from `start` to `end` (UTC), not firing while down (a list of
    [from, to) windows), keeping its cursor like the real one. Returns (tick, due time) per start."""
    started, last_checked, tick = [], start, start
    while tick <= end:
        if not any(a <= tick < b for a, b in down):
            due_at = due(schedule, last_checked, tick)
            if due_at is not None:
                started.append((tick, due_at))
            last_checked = tick
        tick += TICK
    return started


def local_dates(started: list[tuple], zone: str) -> list[str]:
    return [due_at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z") for _, due_at in started]


# -- the rule: once per due time, a missed window once --------------------------------------------

def test_a_daily_schedule_starts_once_a_day_at_its_local_time():
    schedule = Schedule.parse("0 0 6 * * *", "Europe/Vilnius")
    started = simulate_timer(schedule, utc(2025, 1, 1), utc(2025, 1, 4))
    assert local_dates(started, "Europe/Vilnius") == ["2025-01-01 06:00 EET", "2025-01-02 06:00 EET",
                                                      "2025-01-03 06:00 EET"]
    assert all(tick == due_at for tick, due_at in started)  # ticks fall on the due times here


def test_a_missed_window_runs_once_on_recovery_with_the_latest_due_time():
    schedule = Schedule.parse("*/30 * * * *", "UTC")
    started = simulate_timer(schedule, utc(2025, 1, 1), utc(2025, 1, 1, 12), down=[(utc(2025, 1, 1, 2, 1),
                                                                                      utc(2025, 1, 1, 7, 12))])
    ticks = [tick for tick, _ in started]
    # every half hour until the outage, one start at recovery (07:15) for the 07:00 slot, then on time
    assert (utc(2025, 1, 1, 7, 15), utc(2025, 1, 1, 7)) in started
    assert not any(utc(2025, 1, 1, 2, 1) <= tick < utc(2025, 1, 1, 7, 12) for tick in ticks)
    assert len([t for t in ticks if utc(2025, 1, 1, 7, 12) <= t < utc(2025, 1, 1, 7, 30)]) == 1
    # the timer starts looking at 00:00, so (00:00, ...]: 00:30-02:00, 07:00 once, 07:30-12:00
    assert [due_at for _, due_at in started] == (
        [utc(2025, 1, 1, 0, 30) + timedelta(minutes=30) * k for k in range(4)]
        + [utc(2025, 1, 1, 7) + timedelta(minutes=30) * k for k in range(11)])


def test_a_window_without_a_due_time_starts_nothing_and_time_standing_still_starts_nothing():
    schedule = Schedule.parse("0 0 6 * * *", "UTC")
    assert due(schedule, utc(2025, 1, 1, 6), utc(2025, 1, 2, 5, 59)) is None
    assert due(schedule, utc(2025, 1, 1, 6), utc(2025, 1, 1, 6)) is None
    assert due(schedule, utc(2025, 1, 1, 7), utc(2025, 1, 1, 6)) is None  # a clock that went back
    # the bounds: (last_checked, now]
    assert due(schedule, utc(2025, 1, 1, 5, 59), utc(2025, 1, 1, 6)) == utc(2025, 1, 1, 6)
    assert due(schedule, utc(2025, 1, 1, 6), utc(2025, 1, 1, 6, 5)) is None


def test_a_timer_down_for_months_starts_a_missed_export_once():
    schedule = Schedule.parse("0 0 6 * * *", "Europe/Vilnius")
    assert due(schedule, utc(2025, 1, 1), utc(2025, 6, 1, 12)) == utc(2025, 6, 1, 3)  # 06:00 EEST


# -- daylight saving, both directions, two zones -----------------------------------------------

@pytest.mark.parametrize("zone, cron, start, end, expected", [
    # Vilnius springs forward 2025-03-30 03:00 EET -> 04:00 EEST: 03:30 does not exist that day
    ("Europe/Vilnius", "0 30 3 * * *", utc(2025, 3, 28), utc(2025, 4, 1),
     ["2025-03-28 03:30 EET", "2025-03-29 03:30 EET", "2025-03-30 04:00 EEST", "2025-03-31 03:30 EEST"]),
    # Vilnius falls back 2025-10-26 04:00 EEST -> 03:00 EET: 03:30 happens twice, runs once (the first)
    ("Europe/Vilnius", "0 30 3 * * *", utc(2025, 10, 24), utc(2025, 10, 28),
     ["2025-10-24 03:30 EEST", "2025-10-25 03:30 EEST", "2025-10-26 03:30 EEST", "2025-10-27 03:30 EET"]),
    # New York springs forward 2025-03-09 02:00 EST -> 03:00 EDT
    ("America/New_York", "30 2 * * *", utc(2025, 3, 7, 12), utc(2025, 3, 11, 12),
     ["2025-03-08 02:30 EST", "2025-03-09 03:00 EDT", "2025-03-10 02:30 EDT", "2025-03-11 02:30 EDT"]),
    # New York falls back 2025-11-02 02:00 EDT -> 01:00 EST: 01:30 happens twice, runs once
    ("America/New_York", "30 1 * * *", utc(2025, 10, 31, 12), utc(2025, 11, 4, 12),
     ["2025-11-01 01:30 EDT", "2025-11-02 01:30 EDT", "2025-11-03 01:30 EST", "2025-11-04 01:30 EST"]),
])
def test_daylight_saving_neither_skips_nor_doubles_a_daily_run(zone, cron, start, end, expected):
    assert local_dates(simulate_timer(Schedule.parse(cron, zone), start, end), zone) == expected


@pytest.mark.parametrize("zone, day, runs", [
    ("America/New_York", "2025-03-09", 23),  # 02:00 does not exist: one run per hour that does
    ("America/New_York", "2025-11-02", 24),  # 01:00 happens twice: runs once
    ("Europe/Vilnius", "2025-03-30", 23),
    ("Europe/Vilnius", "2025-10-26", 24),
])
def test_an_hourly_schedule_runs_once_per_wall_clock_hour_on_a_change_day(zone, day, runs):
    schedule = Schedule.parse("0 * * * *", zone)
    midnight_utc = datetime.fromisoformat(day).replace(tzinfo=UTC)
    started = simulate_timer(schedule, midnight_utc - timedelta(days=1), midnight_utc + timedelta(days=2))
    on_day = [due_at for _, due_at in started if due_at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d") == day]
    assert len(on_day) == runs == len(set(on_day))


def test_wall_times_in_a_gap_are_due_at_the_first_instant_after_it():
    vilnius = ZoneInfo("Europe/Vilnius")
    for minute in (0, 1, 30, 59):
        assert instant_of(datetime(2025, 3, 30, 3, minute), vilnius) == utc(2025, 3, 30, 1)
    assert instant_of(datetime(2025, 3, 30, 4, 0), vilnius) == utc(2025, 3, 30, 1)
    assert instant_of(datetime(2025, 10, 26, 3, 30), vilnius) == utc(2025, 10, 26, 0, 30)  # the first 03:30


def test_next_run_at_is_what_an_export_shows():
    schedule = Schedule.parse("0 0 6 * * Mon", "Europe/Vilnius")
    assert next_run_at(schedule, utc(2025, 3, 26, 12)) == utc(2025, 3, 31, 3)  # Monday 06:00 EEST
    assert next_run_at(schedule, utc(2025, 3, 31, 3)) == utc(2025, 4, 7, 3)  # strictly after now
    assert latest_due(schedule, utc(2025, 3, 31, 3)) == utc(2025, 3, 31, 3)


def test_the_app_schedule_is_utc_and_applies_to_exports_without_their_own():
    app = app_schedule("0 0 2 * * *")
    assert app.to_dict() == {"cron": "0 0 2 * * *", "timeZone": "UTC"}
    assert effective_schedule(None, app) is app
    own = Schedule.parse("0 6 * * *", "Europe/Vilnius")
    assert effective_schedule(own, app) is own
    with pytest.raises(InvalidScheduleError, match="EXPORT_SCHEDULE.cron: second field"):
        app_schedule("30 0 2 * * *")


def test_naive_datetimes_are_refused():
    schedule = Schedule.parse("0 6 * * *", "UTC")
    with pytest.raises(TypeError, match="timezone-aware"):
        due(schedule, datetime(2025, 1, 1), utc(2025, 1, 2))
    with pytest.raises(TypeError, match="timezone-aware"):
        next_run_at(schedule, datetime(2025, 1, 1))


# -- the schedule document: from_dict / to_dict, field errors --------------------------------------

def test_schedule_round_trips_and_time_zone_defaults_to_utc():
    schedule = Schedule.from_dict({"cron": " 0  30 6 * * * ", "timeZone": "Europe/Vilnius"})
    assert schedule.to_dict() == {"cron": "0 30 6 * * *", "timeZone": "Europe/Vilnius"}
    assert Schedule.from_dict(schedule.to_dict()) == schedule
    assert Schedule.from_dict({"cron": "0 6 * * *"}).time_zone == "UTC"


@pytest.mark.parametrize("body, expected", [
    ({"cron": "0 6 * * *", "timeZone": "Europe/Vilnus"},
     [("schedule.timeZone", "'Europe/Vilnus' is not an IANA time zone name")]),
    ({"cron": "0 6 * * *", "timeZone": "europe/vilnius"}, [("schedule.timeZone", "did you mean 'Europe/Vilnius'?")]),
    ({"cron": "0 6 * * *", "timeZone": 2}, [("schedule.timeZone", "got int")]),
    ({"cron": "0 6 * * *", "timeZone": "../../etc/passwd"}, [("schedule.timeZone", "is not an IANA time zone name")]),
    ({"cron": "0 6 * * *", "timeZone": "localtime"}, [("schedule.timeZone", "is not an IANA time zone name")]),
    ({"cron": "0 25 * * *", "timeZone": "Mars/Olympus"},
     [("schedule.cron", "hour field (2nd of 5) '25'"), ("schedule.timeZone", "'Mars/Olympus'")]),
    ({"timeZone": "UTC"}, [("schedule.cron", "is required")]),
    ({"cron": "0 6 * * *", "when": "daily"}, [("schedule.when", "is not a known field")]),
    ("0 6 * * *", [("schedule", "must be an object")]),
])
def test_bad_schedules_get_one_field_error_per_bad_part(body, expected):
    with pytest.raises(InvalidScheduleError) as raised:
        Schedule.from_dict(body)
    problems = raised.value.problems
    assert [p.field for p in problems] == [field for field, _ in expected]
    for problem, (_, part) in zip(problems, expected):
        assert part in problem.message


# -- property: agrees with a minute-by-minute oracle ----------------------------------------------

def oracle_due_instants(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Due instants in (start, end] found by walking UTC minute by minute, independently of
    instant_of: a wall minute that matches is due when first shown; matching wall minutes the
    clock skipped over are due at the first minute after the skip."""
    zone, expression, found = schedule.zone, schedule.expression, []
    moment = start.replace(second=0, microsecond=0)
    previous = (moment - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
    while moment <= end:
        local = moment.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        skipped = previous + timedelta(minutes=1)
        hit = expression.matches(wall) and local.fold == 0
        while skipped < wall:  # minutes the clock jumped over (spring forward)
            hit = hit or expression.matches(skipped)
            skipped += timedelta(minutes=1)
        if hit and moment > start:
            found.append(moment)
        previous = max(previous, wall)
        moment += timedelta(minutes=1)
    return found


zones = st.sampled_from(["Europe/Vilnius", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"])
crons = st.sampled_from(["0 * * * *", "*/20 1-3 * * *", "30 2 * * *", "0 0 3 * * *", "15,45 0-4 * * 0",
                         "0 0 1 * * *", "59 1 * * *", "0 30 2 * * 1-5"])
# windows around the 2025 changes of these zones (and some ordinary days)
starts = st.sampled_from([utc(2025, 3, 8, 18), utc(2025, 3, 29, 18), utc(2025, 4, 5, 12), utc(2025, 10, 4, 12),
                          utc(2025, 10, 25, 18), utc(2025, 11, 1, 18), utc(2025, 6, 1)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone=zones, cron=crons, start=starts, offset=st.integers(0, 24 * 60))
def test_due_and_next_run_at_agree_with_the_oracle(zone, cron, start, offset):
    schedule = Schedule.parse(cron, zone)
    start = start + timedelta(minutes=offset)
    end = start + timedelta(hours=30)
    expected = oracle_due_instants(schedule, start, end)
    found, moment = [], start
    while (moment := next_run_at(schedule, moment)) is not None and moment <= end:
        found.append(moment)
    assert found == expected
    # due() over any tick is the latest expected instant in the window
    for tick in (start + timedelta(minutes=m) for m in range(0, 30 * 60 + 1, 97)):
        earlier = [t for t in expected if t <= tick]
        assert due(schedule, start, tick) == (earlier[-1] if earlier else None)
