"""When a schedule is due: pure decisions on a simulated or real clock, in the schedule's time zone.

A schedule's times are wall-clock times in its IANA zone. Mapping them to instants:

- a wall time that does not exist (the hour skipped when clocks spring forward) is due at the
  first instant after the gap: `30 2 * * *` in America/New_York runs at 03:00 EDT that day;
- a wall time that happens twice (the hour repeated when clocks fall back) is due once, at its
  first occurrence (before the change);
- so a daylight-saving change neither skips nor doubles a run. Several wall times that fall in
  one gap become the same instant, which is one due time (an hourly schedule runs 23 times on a
  spring-forward day, once per hour that exists).

`due(schedule, last_checked, now)` is the latest due instant in (last_checked, now]: a timer that
was down for a while starts a missed export once on recovery, not once per missed slot.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..problems import FieldError
from ._cron import CronExpression, parse_cron
from ._errors import InvalidScheduleError

UTC = timezone.utc
# Larger than any jump of a zone's UTC offset (DST moves clocks by at most 2 hours, Antarctica/Troll):
# a search for wall times around an instant starts this far off and checks each candidate's instant.
_SLACK = timedelta(hours=3)
_ONE_MINUTE = timedelta(minutes=1)
SCHEDULE_FIELDS = ("cron", "timeZone")
# Files of a zone database that are not places: the host's own setting, and placeholders.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.lru_cache(maxsize=1)
def _zone_names() -> tuple[frozenset[str], dict[str, str]]:
    """Every IANA zone name this host knows (system database or the tzdata package), and by casefold."""
    names = frozenset(name for name in available_timezones()
                      if name not in _NOT_ZONES and not name.startswith(("posix/", "right/")))
    return names, {name.casefold(): name for name in names}


def _zone(name: Any, path: str) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        got = repr(name) if isinstance(name, str) else ("null" if name is None else type(name).__name__)
        raise InvalidScheduleError([FieldError(path, "must be an IANA time zone name such as \"Europe/Vilnius\" "
                                                     f"or \"UTC\", got {got}")])
    known, by_casefold = _zone_names()
    if name not in known:
        spelled = by_casefold.get(name.casefold())
        hint = f"; did you mean {spelled!r}?" if spelled else " (e.g. \"Europe/Vilnius\", \"America/New_York\", \"UTC\")"
        raise InvalidScheduleError([FieldError(path, f"{name!r} is not an IANA time zone name{hint}")])
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # listed but unreadable: a broken zone database
        raise InvalidScheduleError([FieldError(path, f"time zone {name!r} cannot be loaded on this host")]) from None


@dataclass(frozen=True)
class Schedule:
    """An export's schedule: a cron expression evaluated in an IANA time zone."""

    cron: str
    time_zone: str
    expression: CronExpression = field(compare=False, repr=False)
    zone: ZoneInfo = field(compare=False, repr=False)

    @classmethod
    def parse(cls, cron: Any, time_zone: Any = "UTC", *, path: str = "schedule") -> "Schedule":
        """Validate both parts; InvalidScheduleError lists a FieldError per bad part
        (`<path>.cron`, `<path>.timeZone`)."""
        problems: list[FieldError] = []
        expression = zone = None
        try:
            expression = parse_cron(cron, f"{path}.cron")
        except InvalidScheduleError as error:
            problems += error.problems
        try:
            zone = _zone(time_zone, f"{path}.timeZone")
        except InvalidScheduleError as error:
            problems += error.problems
        if problems:
            raise InvalidScheduleError(problems)
        return cls(expression.text, zone.key, expression, zone)

    @classmethod
    def from_dict(cls, data: Any, *, path: str = "schedule") -> "Schedule":
        """From the API's `{"cron": ..., "timeZone": ...}` (timeZone defaults to UTC)."""
        if not isinstance(data, Mapping):
            raise InvalidScheduleError([FieldError(path, "must be an object {\"cron\": ..., \"timeZone\": ...} "
                                                         "or null to follow the app's EXPORT_SCHEDULE")])
        problems = [FieldError(f"{path}.{key}", "is not a known field (cron, timeZone)")
                    for key in data if key not in SCHEDULE_FIELDS]
        if "cron" not in data:
            problems.append(FieldError(f"{path}.cron", "is required"))
        try:
            schedule = cls.parse(data.get("cron", ""), data.get("timeZone", "UTC"), path=path)
        except InvalidScheduleError as error:
            problems += [p for p in error.problems if not ("cron" not in data and p.field == f"{path}.cron")]
            schedule = None
        if problems:
            raise InvalidScheduleError(problems)
        return schedule

    def to_dict(self) -> dict[str, str]:
        return {"cron": self.cron, "timeZone": self.time_zone}


def app_schedule(expression: str) -> Schedule:
    """The app's EXPORT_SCHEDULE (NCRONTAB, UTC): the schedule of exports whose `schedule` is null."""
    return Schedule.parse(expression, "UTC", path="EXPORT_SCHEDULE")


def effective_schedule(export_schedule: Schedule | None, app: Schedule) -> Schedule:
    return app if export_schedule is None else export_schedule


# -- instants ----------------------------------------------------------------------------------

def _require_aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def instant_of(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a wall-clock time is due at: its first occurrence when the clock repeats it,
    the first instant after the gap when the clock skips it."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wall:
        return first  # exists; fold=0 is the earlier of two occurrences
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = (first, other) if first < other else (other, first)
    # In a gap: instants before the change show an earlier wall time, instants from it on a later one.
    # The change is at a whole second of [low, high]: find the first second whose wall time is past `wall`.
    lo, hi = 0, int((high - low).total_seconds())
    while lo < hi:
        middle = (lo + hi) // 2
        if _wall(low + timedelta(seconds=middle), zone) > wall:
            hi = middle
        else:
            lo = middle + 1
    return low + timedelta(seconds=lo)


def latest_due(schedule: Schedule, now: datetime) -> datetime | None:
    """The latest instant at or before `now` the schedule is due at (UTC), or None."""
    now = _require_aware(now, "now")
    expression, zone = schedule.expression, schedule.zone
    wall = expression.latest_at_or_before(_wall(now, zone) + _SLACK)
    while wall is not None:
        instant = instant_of(wall, zone)
        if instant <= now:  # instants grow with wall time, so the first one found is the latest
            return instant
        wall = expression.latest_at_or_before(wall - _ONE_MINUTE)
    return None


def next_run_at(schedule: Schedule, now: datetime) -> datetime | None:
    """The first instant after `now` the schedule is due at (UTC): what an export shows as nextRunAt."""
    now = _require_aware(now, "now")
    expression, zone = schedule.expression, schedule.zone
    wall = expression.next_after(_wall(now, zone) - _SLACK)
    while wall is not None:
        instant = instant_of(wall, zone)
        if instant > now:
            return instant
        wall = expression.next_after(wall)
    return None


def due(schedule: Schedule, last_checked: datetime, now: datetime) -> datetime | None:
    """The due time to start now, or None: the latest instant in (last_checked, now] the schedule
    is due at. One due time however many slots were missed, so a timer that was down starts a
    missed export once. For an export never checked before, pass the time its schedule was saved.
    """
    last_checked, now = _require_aware(last_checked, "last_checked"), _require_aware(now, "now")
    if now <= last_checked:
        return None
    found = latest_due(schedule, now)
    return found if found is not None and found > last_checked else None
