"""Typed conversions of profile values (CSV cell text) to what Omnisend takes, for the hot path.

How it is meant to be called: the worker's row mapping (map_row) calls one function per mapped
value per row, through a binding made once per chunk (shared/custom_properties.py binds custom
properties; `birthdate` and `gender` call `to_birthdate` / `to_gender` directly). Nothing here
reads settings or storage, compiles a pattern per call, or raises on bad data.

Every function takes the cell text and the column's name and returns one of:

- the converted value (str, int, float, bool or list of str),
- None: the cell is empty (or, for gender, not a gender Omnisend knows), so the field is left out;
- an `Invalid`: the value cannot be converted. Its `detail` names the column and the value; the
  row is rejected as `invalid_value` (`RejectReason.INVALID_VALUE`) unless the mapping says to omit
  the field.

Decisions (what a profile export may carry, and nothing that needs a guess):

- **number**: ASCII decimal notation with a `.` point and an optional exponent, as .NET writes
  decimals and doubles in invariant culture: `1234.5`, `-3`, `+7`, `.5`, `1E+15`. Integers become
  JSON integers (within +/-(2**53 - 1), beyond which JSON readers lose digits), anything with a
  point or exponent a JSON number with a fraction. A comma (`1,5`, `1,234.5`), a space inside
  (`1 234,5`), `NaN`, `Infinity` or non-ASCII digits are refused, never guessed.
- **boolean**: true/false, 1/0, yes/no in any case.
- **date**: ISO 8601 (`2024-03-05`, `2024-03-05T13:05:09`, with `Z` or an offset, with fractional
  seconds), and `M/d/yyyy` with an optional `h:mm[:ss] AM/PM` or `H:mm[:ss]` time, as Customer
  Insights writes them. A date alone stays a date (`2024-03-05`); a time with an offset becomes UTC
  (`2024-03-05T11:05:09Z`); a time without one is taken as UTC, which is what Customer Insights
  writes. Fractions of a second are dropped (Omnisend's date values are `YYYY-MM-DDTHH:MM:SSZ`).
  `d/M/yyyy` is not read: it cannot be told from `M/d/yyyy`.
- **birthdate**: the same formats to `YYYY-MM-DD`, the calendar date as written (no time-zone
  shift); an impossible date (`2/30/1990`) or a year before 1900 (.NET's 1/1/0001 "no value") is
  refused.
- **gender**: m/f/male/female in any case to `m`/`f`; anything else is left out, never refused.
- **string** and **stringList** items: trimmed, at most 2048 characters (Omnisend's limit for a
  custom-property string); a list is split on the mapping's separator, empty items dropped, at most
  MAX_LIST_ITEMS items.
"""
from __future__ import annotations

import functools
import re
from datetime import date, datetime, timedelta, timezone
from typing import Callable, NamedTuple, Union

MAX_STRING_LENGTH = 2048  # Omnisend: custom-property string values hold at most 2048 characters
MAX_LIST_ITEMS = 100  # this project's cap on a list value (Omnisend documents none; tags stop at 100)
MAX_SAFE_INTEGER = 2**53 - 1
MIN_BIRTH_YEAR = 1900
_SHOWN = 100  # characters of a bad value repeated in a reject detail


class Invalid(NamedTuple):
    """A value that cannot be converted: which type was wanted, the value, why, and its column."""

    type: str
    value: str
    reason: str
    column: str = ""

    @property
    def detail(self) -> str:
        where = f"column {self.column!r}: " if self.column else ""
        return f"{where}{self.value[:_SHOWN]!r} is not a valid {self.type}: {self.reason}"


Value = Union[str, int, float, bool, list]
Converted = Union[Value, None, Invalid]
Converter = Callable[[str, str], Converted]

# -- numbers ------------------------------------------------------------------------------------

def to_number(text: str, column: str = "") -> Converted:
    value = text.strip()
    if not value:
        return None
    # float() in C does the reading; what it takes beyond ASCII decimal notation ("1_000", non-ASCII
    # digits, "nan", "inf") is refused by the checks after it.
    try:
        number = float(value)
    except ValueError:
        return Invalid("number", value, _why_not_a_number(value), column)
    if "_" in value or not value.isascii() or number - number != 0.0:  # the last: inf or nan
        return Invalid("number", value, _why_not_a_number(value), column)
    if "." in value or "e" in value or "E" in value:
        return number
    whole = int(value)
    if -MAX_SAFE_INTEGER <= whole <= MAX_SAFE_INTEGER:
        return whole
    return Invalid("number", value, f"whole numbers beyond {MAX_SAFE_INTEGER:,} lose digits in JSON", column)


_DECIMAL_NOTATION = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch


def _why_not_a_number(value: str) -> str:
    if _DECIMAL_NOTATION(value):
        return "it is too large"
    if "," in value:
        return "a comma is ambiguous (decimal or thousands separator); write a '.' decimal point and no grouping"
    if any(c.isspace() for c in value):
        return "it has a space inside (a thousands separator?); write digits only, with a '.' decimal point"
    if value.strip("+-").lower() in ("nan", "inf", "infinity"):
        return "it is not a finite number"
    if "_" in value:
        return "expected decimal notation such as 1234.5, -3 or 1.5E+3 (no _ between digits)"
    return "expected decimal notation such as 1234.5, -3 or 1.5E+3"


# -- booleans -----------------------------------------------------------------------------------

_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_BOOLEAN_SPELLINGS = {**_BOOLEANS, **{k.capitalize(): v for k, v in _BOOLEANS.items()},
                      **{k.upper(): v for k, v in _BOOLEANS.items()}}


def to_boolean(text: str, column: str = "") -> Converted:
    found = _BOOLEAN_SPELLINGS.get(text)  # the common spellings, without strip() and lower()
    if found is not None:
        return found
    value = text.strip()
    if not value:
        return None
    found = _BOOLEANS.get(value.lower())
    if found is not None:
        return found
    return Invalid("boolean", value, "expected true/false, 1/0 or yes/no", column)


# -- dates --------------------------------------------------------------------------------------

_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,][0-9]+)?)?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?)?"
).fullmatch
_US = re.compile(
    r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})"
    r"(?:[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?(?: ?([AaPp])\.?[Mm]\.?)?)?"
).fullmatch
_UTC = timezone.utc
_DATE_FORMATS = "expected ISO 8601 (2024-03-05, 2024-03-05T13:05:09Z) or M/d/yyyy [h:mm:ss AM/PM]"


class _Parsed(NamedTuple):
    day: date
    time: tuple[int, int, int] | None  # hour, minute, second
    offset_minutes: int | None  # None: no zone written


def _parse_date(value: str) -> _Parsed | str:
    """The date (and time, offset) written in `value`, or why it is not one."""
    match = _ISO(value)
    if match is not None:
        year, month, day, hour, minute, second, zulu, sign, off_h, off_m = match.groups()
        meridiem = None
    else:
        match = _US(value)
        if match is None:
            return _DATE_FORMATS
        month, day, year, hour, minute, second, meridiem = match.groups()
        zulu = sign = off_h = off_m = None
    if int(year) == 0:
        return "there is no year 0"
    try:
        calendar_day = date(int(year), int(month), int(day))
    except ValueError:
        return f"there is no day {int(day)} in month {int(month)} of {int(year)}" if 1 <= int(month) <= 12 \
            else f"there is no month {int(month)}"
    if hour is None:
        return _Parsed(calendar_day, None, None)
    h, m, s = int(hour), int(minute), int(second or 0)
    if meridiem is not None:
        if not 1 <= h <= 12:
            return f"hour {h} does not go with AM/PM"
        h = h % 12 + (12 if meridiem in "Pp" else 0)
    if h > 23 or m > 59 or s > 59:
        return f"{hour}:{minute}{':' + second if second else ''} is not a time of day"
    offset = None
    if zulu:
        offset = 0
    elif sign:
        if int(off_h) > 23 or int(off_m) > 59:
            return f"{sign}{off_h}:{off_m} is not a UTC offset"
        offset = (int(off_h) * 60 + int(off_m)) * (-1 if sign == "-" else 1)
    return _Parsed(calendar_day, (h, m, s), offset)


# Dates repeat within a column (order dates, birthdates): each distinct text is parsed once per
# process. The caches hold results without the column (an Invalid gets it on the way out).
_DATE_CACHE_SIZE = 32768


@functools.lru_cache(maxsize=_DATE_CACHE_SIZE)
def _date(value: str) -> str | Invalid:
    parsed = _parse_date(value)
    if parsed.__class__ is str:
        return Invalid("date", value, parsed)
    day, time, offset = parsed
    if time is None:
        return day.isoformat()
    moment = datetime(day.year, day.month, day.day, *time)
    if offset:
        try:
            moment -= timedelta(minutes=offset)
        except OverflowError:
            return Invalid("date", value, "it is outside the years 1-9999 in UTC")
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"


@functools.lru_cache(maxsize=_DATE_CACHE_SIZE)
def _birthdate(value: str) -> str | Invalid:
    parsed = _parse_date(value)
    if parsed.__class__ is str:
        return Invalid("birthdate", value, parsed)
    if parsed.day.year < MIN_BIRTH_YEAR:
        return Invalid("birthdate", value, f"a birth year before {MIN_BIRTH_YEAR} is a placeholder, not a birthdate")
    return parsed.day.isoformat()


def to_date(text: str, column: str = "") -> Converted:
    """ISO 8601: `YYYY-MM-DD` for a date, `YYYY-MM-DDTHH:MM:SSZ` (UTC) for a date and time."""
    value = text.strip()
    if not value:
        return None
    result = _date(value)
    return result._replace(column=column) if result.__class__ is Invalid else result


def to_birthdate(text: str, column: str = "") -> Converted:
    """`YYYY-MM-DD`: the calendar date as written (a time and zone, if any, are ignored)."""
    value = text.strip()
    if not value:
        return None
    result = _birthdate(value)
    return result._replace(column=column) if result.__class__ is Invalid else result


# -- gender -------------------------------------------------------------------------------------

_GENDERS = {"m": "m", "f": "f", "male": "m", "female": "f"}


def to_gender(text: str, column: str = "") -> str | None:
    """`m` or `f`; None (leave it out) for anything else, which never rejects the row."""
    return _GENDERS.get(text.strip().lower())


# -- strings and lists --------------------------------------------------------------------------

def to_string(text: str, column: str = "") -> Converted:
    value = text.strip()
    if not value:
        return None
    if len(value) > MAX_STRING_LENGTH:
        return Invalid("string", value, f"it holds {len(value)} characters; Omnisend takes at most {MAX_STRING_LENGTH}",
                       column)
    return value


def string_list(separator: str) -> Converter:
    """A converter splitting on `separator`: items trimmed, empty items dropped, None if none is left."""
    if not isinstance(separator, str) or not separator:
        raise ValueError("a list separator must be a non-empty string")

    def to_string_list(text: str, column: str = "") -> Converted:
        items = [item for item in (part.strip() for part in text.split(separator)) if item]
        if not items:
            return None
        if len(items) > MAX_LIST_ITEMS:
            return Invalid("stringList", text.strip(), f"it has {len(items)} items; at most {MAX_LIST_ITEMS} are sent",
                           column)
        for item in items:
            if len(item) > MAX_STRING_LENGTH:
                return Invalid("stringList", text.strip(), f"an item holds {len(item)} characters; Omnisend takes at "
                                                           f"most {MAX_STRING_LENGTH}", column)
        return items

    return to_string_list


SCALAR_CONVERTERS: dict[str, Converter] = {
    "string": to_string, "number": to_number, "boolean": to_boolean, "date": to_date,
}
