"""Cron expressions: parsing with errors that name the part, and matching on a naive wall clock.

Two dialects, told apart by the number of fields:

- **NCRONTAB** (6 fields, Azure Functions' timer syntax): `second minute hour day month day-of-week`.
  Day of week 0-6 (Sunday = 0). Day of month and day of week must *both* match, as NCrontab does.
- **cron** (5 fields): `minute hour day month day-of-week`. Day of week 0-7 (0 and 7 are Sunday).
  When both day fields are restricted, a day matches if *either* does (POSIX cron); a day field that
  starts with `*` counts as unrestricted for that rule (Vixie cron, e.g. `*/2`).

Each field is a comma-separated list of `*`, `N`, `A-B`, `*/S`, `A-B/S` or `A/S` (A to the field's
maximum, step S); months and days of week also take English names (`Jan`, `January`, `mon`).

**Seconds.** Exports start on whole minutes, and the timer that starts them looks every few
minutes, so the NCRONTAB seconds field must be `0` (any other second is refused with a message).

This module knows nothing of time zones: `next_after` / `latest_at_or_before` work on naive
wall-clock datetimes at minute resolution; shared/schedule/_timing.py maps them to instants.
"""
from __future__ import annotations

import calendar
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ..problems import FieldError
from ._errors import InvalidScheduleError

NCRONTAB_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")
CRON_FIELDS = NCRONTAB_FIELDS[1:]
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")
_DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_ORDINALS = ("1st", "2nd", "3rd", "4th", "5th", "6th")
# Longest a search walks before concluding that a (valid) expression has no further occurrence:
# day-of-month AND day-of-week combinations repeat within 400 years (the Gregorian cycle).
_HORIZON_YEARS = 400
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i
    note: str = ""


_SPECS = {
    "second": _FieldSpec("second", 0, 59),
    "minute": _FieldSpec("minute", 0, 59),
    "hour": _FieldSpec("hour", 0, 23),
    "day of month": _FieldSpec("day of month", 1, 31),
    "month": _FieldSpec("month", 1, 12, _MONTH_NAMES),
    "day of week": _FieldSpec("day of week", 0, 6, _DAY_NAMES, " (Sunday = 0)"),
}


class _FieldProblem(Exception):
    pass


def _value(text: str, spec: _FieldSpec, high: int) -> int:
    if text.isascii() and text.isdigit():
        value = int(text)
        if not spec.low <= value <= high:
            raise _FieldProblem(f"{value} is out of range {spec.low}-{high}{spec.note}")
        return value
    lowered = text.lower()
    if spec.names and len(lowered) >= 3:
        found = [i for i, name in enumerate(spec.names) if name == lowered or (len(lowered) == 3 and name[:3] == lowered)]
        if len(found) == 1:
            return spec.low + found[0]
    if spec.names:
        raise _FieldProblem(f"{text!r} is neither a number {spec.low}-{high} nor a {spec.name} name "
                            f"({', '.join(n[:3].capitalize() for n in spec.names)})")
    raise _FieldProblem(f"{text!r} is not a number {spec.low}-{high}")


def _parse_field(text: str, spec: _FieldSpec, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _FieldProblem("has an empty item (two commas in a row, or a comma at an end)")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise _FieldProblem(f"step {step_text!r} in {item!r} must be a whole number of at least 1")
            step = int(step_text)
        if base == "*":
            first, last = spec.low, spec.high
        elif "-" in base[1:]:
            start_text, _, end_text = base.partition("-")
            first, last = _value(start_text, spec, high), _value(end_text, spec, high)
            if first > last:
                raise _FieldProblem(f"range {item!r} runs backwards ({first} > {last})")
        else:
            first = _value(base, spec, high)
            last = (spec.high if first <= spec.high else first) if slash else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _problem(path: str, message: str) -> InvalidScheduleError:
    return InvalidScheduleError([FieldError(path, message)])


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; `text` as given (whitespace normalised)."""

    text: str
    dialect: str  # "ncrontab" | "cron"
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0-6, Sunday = 0
    either_day: bool  # True: day of month OR day of week (cron with both restricted); else AND
    _times: tuple[int, ...] = field(default=(), compare=False, repr=False)  # minutes of the day, sorted

    # -- matching -----------------------------------------------------------------------------

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        on_day, on_weekday = day.day in self.days, (day.isoweekday() % 7) in self.weekdays
        return (on_day or on_weekday) if self.either_day else (on_day and on_weekday)

    def matches(self, moment: datetime) -> bool:
        """Whether a (naive, wall-clock) minute is one of the expression's."""
        return (moment.second == 0 and moment.microsecond == 0 and moment.minute in self.minutes
                and moment.hour in self.hours and self.matches_day(moment.date()))

    def next_after(self, moment: datetime) -> datetime | None:
        """The first matching minute strictly after `moment` (naive), or None past the horizon."""
        day = moment.date()
        if self.matches_day(day):
            index = bisect_right(self._times, moment.hour * 60 + moment.minute)
            if index < len(self._times):
                return _at(day, self._times[index])
        last_year = min(day.year + _HORIZON_YEARS, 9999)
        while True:
            if day.month == 12 and day.day == 31 and day.year >= last_year:
                return None
            day += _ONE_DAY
            if day.month not in self.months:  # jump to the 1st of the next month
                day = _first_of_next_month(day) - _ONE_DAY
                continue
            if self.matches_day(day):
                return _at(day, self._times[0])

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last matching minute at or before `moment` (naive), or None past the horizon."""
        day = moment.date()
        if self.matches_day(day):
            index = bisect_right(self._times, moment.hour * 60 + moment.minute) - 1
            if index >= 0:
                return _at(day, self._times[index])
        first_year = max(day.year - _HORIZON_YEARS, 1)
        while True:
            if day.month == 1 and day.day == 1 and day.year <= first_year:
                return None
            day -= _ONE_DAY
            if day.month not in self.months:  # the next step lands on the previous month's last day
                day = day.replace(day=1)
                continue
            if self.matches_day(day):
                return _at(day, self._times[-1])


def _at(day: date, minute_of_day: int) -> datetime:
    return datetime(day.year, day.month, day.day, minute_of_day // 60, minute_of_day % 60)


def _first_of_next_month(day: date) -> date:
    if day.month == 12:
        return date(day.year + 1, 1, 1) if day.year < 9999 else day
    return date(day.year, day.month + 1, 1)


def parse_cron(text: str, path: str = "cron") -> CronExpression:
    """Parse an NCRONTAB (6 fields) or cron (5 fields) expression.

    Raises InvalidScheduleError with one FieldError at `path` naming the field (by name and
    position) and what is wrong with it.
    """
    if not isinstance(text, str):
        raise _problem(path, f"must be a string, got {type(text).__name__}")
    tokens = text.split()
    if not tokens:
        raise _problem(path, "is empty; give an NCRONTAB expression (6 fields: second minute hour day month "
                             "day-of-week, e.g. \"0 0 6 * * *\") or a 5-field cron expression (e.g. \"0 6 * * *\")")
    if tokens[0].startswith("@"):
        raise _problem(path, f"{tokens[0]!r} shortcuts are not supported; write the fields out (e.g. \"0 0 0 * * *\")")
    if len(tokens) not in (5, 6):
        raise _problem(path, f"has {len(tokens)} field(s); expected 6 (NCRONTAB: second minute hour day month "
                             "day-of-week) or 5 (cron: minute hour day month day-of-week)")
    dialect = "ncrontab" if len(tokens) == 6 else "cron"
    names = NCRONTAB_FIELDS if dialect == "ncrontab" else CRON_FIELDS
    parsed: dict[str, frozenset[int]] = {}
    for position, (name, token) in enumerate(zip(names, tokens)):
        spec = _SPECS[name]
        high = 7 if (name == "day of week" and dialect == "cron") else spec.high
        try:
            parsed[name] = _parse_field(token, spec, high)
        except _FieldProblem as problem:
            raise _problem(path, f"{name} field ({_ORDINALS[position]} of {len(tokens)}) {token!r}: {problem}") from None
    if dialect == "ncrontab" and parsed["second"] != frozenset({0}):
        raise _problem(path, f"second field (1st of 6) {tokens[0]!r}: must be 0; exports start on whole minutes "
                             "and the scheduler looks every few minutes")
    weekdays = frozenset(d % 7 for d in parsed["day of week"])
    day_token, weekday_token = tokens[-3], tokens[-1]
    either_day = dialect == "cron" and not day_token.startswith("*") and not weekday_token.startswith("*")
    days, months = parsed["day of month"], parsed["month"]
    if not either_day and not any(d <= _days_in_month(m) for m in months for d in days):
        raise _problem(path, f"day of month {day_token!r} never occurs in month {tokens[-2]!r}: the schedule would never run")
    times = tuple(sorted(h * 60 + m for h in parsed["hour"] for m in parsed["minute"]))
    return CronExpression(" ".join(tokens), dialect, parsed["minute"], parsed["hour"], days, months, weekdays,
                          either_day, times)


def _days_in_month(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]
