"""Cron expressions (shared/schedule/_cron.py): both dialects, their matching rules, and errors that
name the field that is wrong."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from shared.schedule import InvalidScheduleError, parse_cron


def occurrences(text: str, start: datetime, count: int) -> list[datetime]:
    expression, found, moment = parse_cron(text), [], start
    for _ in range(count):
        moment = expression.next_after(moment)
        found.append(moment)
    return found


def test_ncrontab_has_seconds_first_and_the_app_default_runs_daily_at_two():
    expression = parse_cron("0 0 2 * * *")
    assert expression.dialect == "ncrontab"
    assert occurrences("0 0 2 * * *", datetime(2025, 1, 1, 2, 0), 2) == [datetime(2025, 1, 2, 2), datetime(2025, 1, 3, 2)]


def test_five_fields_are_classic_cron():
    assert parse_cron("15 6 * * 1-5").dialect == "cron"
    # 2025-01-03 is a Friday: the next weekday after its 06:15 is Monday the 6th
    assert occurrences("15 6 * * 1-5", datetime(2025, 1, 3, 6, 15), 2) == [datetime(2025, 1, 6, 6, 15),
                                                                         datetime(2025, 1, 7, 6, 15)]


@pytest.mark.parametrize("text, moment, expected", [
    ("*/15 * * * *", datetime(2025, 1, 1, 0, 7), datetime(2025, 1, 1, 0, 15)),
    ("0 9-17/4 * * *", datetime(2025, 1, 1, 9, 0), datetime(2025, 1, 1, 13, 0)),
    ("30 5/6 * * *", datetime(2025, 1, 1, 12, 0), datetime(2025, 1, 1, 17, 30)),  # A/S: from 5 to 23 by 6
    ("0 0 1,15 * *", datetime(2025, 1, 1, 0, 0), datetime(2025, 1, 15)),
    ("0 0 * Feb,dec *", datetime(2025, 1, 1), datetime(2025, 2, 1)),
    ("0 0 * * sunday", datetime(2025, 1, 1), datetime(2025, 1, 5)),
    ("0 0 * * 7", datetime(2025, 1, 1), datetime(2025, 1, 5)),  # cron: 7 is Sunday too
    ("0 0 0 29 2 *", datetime(2025, 1, 1), datetime(2028, 2, 29)),
    ("0 0 0 31 * *", datetime(2025, 4, 1), datetime(2025, 5, 31)),  # April has no 31st
])
def test_next_after(text, moment, expected):
    assert parse_cron(text).next_after(moment) == expected


def test_day_fields_and_in_ncrontab_or_in_cron():
    # Friday the 13th: NCRONTAB needs both (as NCrontab does); 2025's is in June
    assert parse_cron("0 0 0 13 * 5").next_after(datetime(2025, 1, 1)) == datetime(2025, 6, 13)
    # cron with both day fields restricted: the 13th OR any Friday (POSIX); 2025-01-03 is a Friday
    assert parse_cron("0 0 13 * 5").next_after(datetime(2025, 1, 1)) == datetime(2025, 1, 3)
    # a day field starting with * does not count as restricted (Vixie cron): odd days that are Fridays
    assert parse_cron("0 0 */2 * 5").next_after(datetime(2025, 1, 1)) == datetime(2025, 1, 3)
    assert parse_cron("0 0 */2 * 5").next_after(datetime(2025, 1, 3)) == datetime(2025, 1, 17)


def test_latest_at_or_before_walks_back_over_months_and_years():
    expression = parse_cron("0 0 6 29 2 *")
    assert expression.latest_at_or_before(datetime(2025, 6, 1)) == datetime(2024, 2, 29, 6)
    assert expression.latest_at_or_before(datetime(2024, 2, 29, 6, 0)) == datetime(2024, 2, 29, 6)
    assert expression.latest_at_or_before(datetime(2024, 2, 29, 5, 59)) == datetime(2020, 2, 29, 6)
    assert parse_cron("*/5 * * * *").latest_at_or_before(datetime(2025, 1, 1, 0, 4, 59)) == datetime(2025, 1, 1)


def test_matches_agrees_with_the_searches():
    expression = parse_cron("0 10,40 8-9 * * Mon-Wed")
    assert expression.matches(datetime(2025, 1, 6, 8, 40)) and not expression.matches(datetime(2025, 1, 6, 8, 41))
    assert not expression.matches(datetime(2025, 1, 9, 8, 40))  # a Thursday
    assert expression.matches_day(date(2025, 1, 8)) and not expression.matches_day(date(2025, 1, 9))


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("* * *", "has 3 field(s); expected 6 (NCRONTAB"),
    ("@daily", "shortcuts are not supported"),
    ("61 * * * *", "minute field (1st of 5) '61': 61 is out of range 0-59"),
    ("0 61 * * * *", "minute field (2nd of 6) '61'"),
    ("0 0 24 * * *", "hour field (3rd of 6) '24': 24 is out of range 0-23"),
    ("0 0 0 32 * *", "day of month field (4th of 6) '32'"),
    ("0 0 0 * 13 *", "month field (5th of 6) '13'"),
    ("0 0 0 * Foo *", "month field (5th of 6) 'Foo': 'Foo' is neither a number 1-12 nor a month name"),
    ("0 0 0 * * 7", "day of week field (6th of 6) '7': 7 is out of range 0-6 (Sunday = 0)"),
    ("30 0 0 * * *", "second field (1st of 6) '30': must be 0"),
    ("* 0 0 * * *", "second field (1st of 6) '*': must be 0"),
    ("5-1 * * * *", "range '5-1' runs backwards"),
    ("*/0 * * * *", "step '0' in '*/0' must be a whole number of at least 1"),
    ("1,,2 * * * *", "has an empty item"),
    ("0 0 0 30 2 *", "day of month '30' never occurs in month '2'"),
    ("0 0 31 4,6 *", "day of month '31' never occurs in month '4,6'"),
])
def test_errors_name_the_field_and_what_is_wrong(text, message):
    with pytest.raises(InvalidScheduleError) as raised:
        parse_cron(text, "schedule.cron")
    [problem] = raised.value.problems
    assert problem.field == "schedule.cron"
    assert message in problem.message


def test_a_cron_field_error_is_not_raised_for_an_or_day_that_can_occur():
    parse_cron("0 0 30 2 1")  # the 30th of February never comes, but Mondays in February do (cron: OR)
