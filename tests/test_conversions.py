"""Typed conversions of profile values (shared/conversions.py): examples, and properties for numbers
and dates over generated values."""
from __future__ import annotations

import calendar
import math
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from shared.conversions import (
    MAX_LIST_ITEMS, MAX_SAFE_INTEGER, MAX_STRING_LENGTH, Invalid, string_list, to_birthdate, to_boolean, to_date,
    to_gender, to_number, to_string,
)

ALL = (to_number, to_boolean, to_date, to_birthdate, to_gender, to_string, string_list(";"))


def invalid(result) -> Invalid:
    assert result.__class__ is Invalid, f"expected an Invalid, got {result!r}"
    return result


# -- examples ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("1234.5", 1234.5), ("-3", -3), ("+7", 7), ("007", 7), (" 42 ", 42), ("0.5", 0.5), (".5", 0.5), ("5.", 5.0),
    ("1e3", 1000.0), ("1.5E+15", 1.5e15), ("-2.5e-3", -0.0025), (str(MAX_SAFE_INTEGER), MAX_SAFE_INTEGER),
])
def test_numbers_in_decimal_notation(text, expected):
    result = to_number(text, "LifetimeValue")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("text, reason", [
    ("1 234,5", "comma is ambiguous"), ("1,5", "comma is ambiguous"), ("1,234.50", "comma is ambiguous"),
    ("1 234", "space inside"), ("NaN", "not a finite number"), ("-Infinity", "not a finite number"),
    ("1e400", "too large"), (str(MAX_SAFE_INTEGER + 1), "lose digits"), ("0x1F", "decimal notation"),
    ("1_000", "decimal notation"), ("١٢٣", "decimal notation"), ("€5", "decimal notation"), ("1.2.3", "decimal notation"),
])
def test_numbers_that_would_need_a_guess_are_refused(text, reason):
    failure = invalid(to_number(text, "LifetimeValue"))
    assert reason in failure.reason
    assert failure.detail.startswith(f"column 'LifetimeValue': {text!r} is not a valid number: ")


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("False", False), ("TRUE", True), ("1", True), ("0", False), ("yes", True), (" No ", False),
    ("yEs", True), ("", None), ("  ", None),
])
def test_booleans(text, expected):
    assert to_boolean(text, "Vip") is expected


@pytest.mark.parametrize("text", ["y", "n", "on", "2", "truth"])
def test_other_booleans_are_refused(text):
    assert "true/false, 1/0 or yes/no" in invalid(to_boolean(text, "Vip")).detail


@pytest.mark.parametrize("text, expected", [
    ("2024-03-05", "2024-03-05"),
    ("2024-03-05T13:05:09Z", "2024-03-05T13:05:09Z"),
    ("2024-03-05T13:05:09.1234567Z", "2024-03-05T13:05:09Z"),  # .NET's 7 fractional digits, dropped
    ("2024-03-05 13:05:09", "2024-03-05T13:05:09Z"),  # no zone: UTC, as Customer Insights writes
    ("2024-03-05T13:05", "2024-03-05T13:05:00Z"),
    ("2024-03-05T01:05:09+02:00", "2024-03-04T23:05:09Z"),
    ("2024-03-05T23:05:09-0500", "2024-03-06T04:05:09Z"),
    ("3/5/2024", "2024-03-05"),
    ("3/5/2024 1:05:09 PM", "2024-03-05T13:05:09Z"),
    ("12/31/2024 12:00:00 AM", "2024-12-31T00:00:00Z"),
    ("12/31/2024 12:30:00 pm", "2024-12-31T12:30:00Z"),
    ("03/05/2024 13:05", "2024-03-05T13:05:00Z"),
])
def test_dates_to_iso_8601(text, expected):
    assert to_date(text, "LastPurchaseDate") == expected


@pytest.mark.parametrize("text, reason", [
    ("2024-02-30", "no day 30 in month 2 of 2024"), ("2/29/2023", "no day 29 in month 2 of 2023"),
    ("13/5/2024", "no month 13"), ("0000-01-01", "no year 0"), ("3/5/2024 13:05:09 PM", "does not go with AM/PM"),
    ("2024-03-05T24:00:00", "not a time of day"), ("2024-03-05T10:00:00+25:00", "not a UTC offset"),
    ("2024-W10-2", "expected ISO 8601"), ("05.03.2024", "expected ISO 8601"), ("20240305", "expected ISO 8601"),
    ("yesterday", "expected ISO 8601"), ("9999-12-31T23:00:00-02:00", "outside the years"),
])
def test_impossible_or_unknown_dates_are_refused(text, reason):
    assert reason in invalid(to_date(text, "LastPurchaseDate")).reason


@pytest.mark.parametrize("text, expected", [
    ("1990-05-01", "1990-05-01"), ("5/1/1990", "1990-05-01"), ("5/1/1990 12:00:00 AM", "1990-05-01"),
    ("1990-05-01T00:00:00+03:00", "1990-05-01"),  # the date as written, never shifted to UTC
    ("2/29/2000", "2000-02-29"), ("", None),
])
def test_birthdates(text, expected):
    assert to_birthdate(text, "BirthDate") == expected


@pytest.mark.parametrize("text, reason", [
    ("2/30/1990", "no day 30 in month 2"), ("1990-13-01", "no month 13"), ("2/29/1900", "no day 29"),
    ("1/1/0001 12:00:00 AM", "placeholder"), ("1899-12-31", "placeholder"), ("May 1st", "expected ISO 8601"),
])
def test_impossible_birthdates_are_refused(text, reason):
    failure = invalid(to_birthdate(text, "BirthDate"))
    assert reason in failure.reason and failure.detail.startswith("column 'BirthDate': ")


@pytest.mark.parametrize("text, expected", [
    ("m", "m"), ("F", "f"), ("Male", "m"), (" FEMALE ", "f"), ("other", None), ("x", None), ("", None),
    ("non-binary", None), ("mal", None),
])
def test_gender_is_m_or_f_or_left_out(text, expected):
    assert to_gender(text, "Gender") == expected


def test_strings_are_trimmed_and_capped():
    assert to_string("  Gold ", "Tier") == "Gold" and to_string("   ", "Tier") is None
    assert to_string("x" * MAX_STRING_LENGTH, "Tier") == "x" * MAX_STRING_LENGTH
    assert "at most 2048" in invalid(to_string("x" * (MAX_STRING_LENGTH + 1), "Tier")).reason


def test_string_lists_split_on_the_named_separator():
    stores = string_list(";")
    assert stores(" Vilnius ; Kaunas;;  ;Riga ", "Stores") == ["Vilnius", "Kaunas", "Riga"]
    assert stores(" ; ; ", "Stores") is None and stores("", "Stores") is None
    assert string_list(" | ")("a | b|c", "Stores") == ["a", "b|c"]
    assert stores(";".join(["s"] * MAX_LIST_ITEMS), "Stores") == ["s"] * MAX_LIST_ITEMS
    assert f"at most {MAX_LIST_ITEMS}" in invalid(stores(";".join(["s"] * (MAX_LIST_ITEMS + 1)), "Stores")).reason
    assert "an item holds 2049" in invalid(stores("a;" + "x" * 2049, "Stores")).reason
    with pytest.raises(ValueError):
        string_list("")


def test_details_name_the_column_and_cut_long_values():
    failure = invalid(to_number("x" * 500, "Score"))
    assert failure.detail.startswith("column 'Score': 'xxxx") and len(failure.detail) < 250
    assert invalid(to_number("x")).detail.startswith("'x' is not a valid number")


# -- properties: numbers ----------------------------------------------------------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False)


@given(finite_floats, st.sampled_from(["{!r}", "{:.17g}", "{:.6f}", "{:E}", "{:e}", "{:.3e}"]))
def test_any_float_written_in_decimal_notation_reads_back(value, form):
    text = form.format(value)
    if text in ("inf", "-inf") or "e" not in text.lower() and "." not in text:
        return  # an integer-looking text is covered below
    if math.isinf(float(text)):  # rounded up past the largest float by the format
        assert "too large" in invalid(to_number(text, "C")).reason
    else:
        assert to_number(text, "C") == float(text)


@given(st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), st.sampled_from(["", "+", " ", "00"]))
def test_any_safe_integer_reads_back_as_an_integer(value, prefix):
    text = (prefix + str(value)) if value >= 0 or prefix == " " else str(value)
    result = to_number(text, "C")
    assert result == value and type(result) is int


@given(st.integers(1000, 10**15), st.sampled_from([",", " ", "\u00a0", "'"]), st.integers(0, 99))
def test_grouped_or_comma_decimals_are_never_guessed(value, group, cents):
    grouped = f"{value:,}".replace(",", group)
    for text in (grouped, f"{grouped},{cents:02d}", f"{grouped}.{cents:02d}", f"{value},{cents:02d}"):
        assert to_number(text, "C").__class__ is Invalid


@settings(max_examples=500)
@given(st.text(max_size=30))
def test_any_text_gives_a_number_that_its_digits_say_or_a_reason(text):
    result = to_number(text, "C")
    if result is None:
        assert not text.strip()
    elif result.__class__ is Invalid:
        assert result.column == "C" and result.reason
    else:
        stripped = text.strip()
        assert re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", stripped, re.ASCII)
        assert result == float(Decimal(stripped))


# -- properties: dates -----------------------------------------------------------------------------

moments = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30))
offsets = st.integers(-14 * 60, 14 * 60)


def us_format(moment: datetime, twelve_hour: bool) -> str:
    day = f"{moment.month}/{moment.day}/{moment.year:04d}"
    if twelve_hour:
        hour = moment.hour % 12 or 12
        return f"{day} {hour}:{moment.minute:02d}:{moment.second:02d} {'PM' if moment.hour >= 12 else 'AM'}"
    return f"{day} {moment.hour}:{moment.minute:02d}:{moment.second:02d}"


def iso_utc(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment:%H:%M:%S}Z"


@given(moments, offsets)
def test_any_iso_datetime_with_an_offset_becomes_the_same_instant_in_utc(moment, offset_minutes):
    zone = timezone(timedelta(minutes=offset_minutes))
    text = moment.replace(tzinfo=zone).isoformat()
    expected = moment.replace(tzinfo=zone).astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
    assert to_date(text, "C") == iso_utc(expected)
    assert to_birthdate(text, "C") == moment.date().isoformat()


@given(moments, st.booleans())
def test_any_customer_insights_datetime_reads_as_utc(moment, twelve_hour):
    moment = moment.replace(microsecond=0)
    text = us_format(moment, twelve_hour)
    assert to_date(text, "C") == iso_utc(moment)
    assert to_date(moment.isoformat(sep=" "), "C") == iso_utc(moment)
    assert to_birthdate(text, "C") == moment.date().isoformat()


@given(st.dates(min_value=date(1900, 1, 1)))
def test_any_date_stays_a_date(day):
    for text in (day.isoformat(), f"{day.month}/{day.day}/{day.year}", f"{day.month:02d}/{day.day:02d}/{day.year}"):
        assert to_date(text, "C") == day.isoformat() == to_birthdate(text, "C")


@given(st.integers(1900, 9999), st.integers(1, 12), st.integers(29, 31))
def test_days_a_month_does_not_have_are_refused(year, month, day):
    if day <= calendar.monthrange(year, month)[1]:
        return
    for text in (f"{year}-{month:02d}-{day:02d}", f"{month}/{day}/{year}", f"{month}/{day}/{year} 1:00:00 AM"):
        assert to_date(text, "C").__class__ is Invalid
        assert "no day" in to_birthdate(text, "C").reason


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from("0123456789-/:TZ+. APMapm"), max_size=28) | st.text(max_size=28))
def test_no_text_makes_a_conversion_raise(text):
    for convert in ALL:
        result = convert(text, "C")
        if result.__class__ is Invalid:
            assert result.detail.startswith("column 'C': ")
