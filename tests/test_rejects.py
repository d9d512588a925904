"""The rejects file: quoting, spreadsheet safety, the email of an invalid address, streaming."""
from __future__ import annotations

import csv
import io

import pytest

from shared.mapping import FieldMapping, bind, map_row
from shared.rejects import (
    REJECTS_CSV_HEADER, Reject, RejectReason, RowRejection, csv_lines, neutralise, rejects_to_csv,
    write_csv,
)
from shared.segments import RawRow
from tools.sample_export import CI_COLUMNS, DEFAULT_MAPPING


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_rejects_csv_quotes_what_needs_quoting():
    rejects = [
        Reject("HighValue", "HV/HighValue_1.csv", 12, RejectReason.INVALID_EMAIL, "'a,b' is not valid", "a,b"),
        RowRejection(RejectReason.MALFORMED_ROW, 'line "1"\nand 2').reject("HighValue", "HV/HighValue_2.csv", 3),
    ]
    text = rejects_to_csv(rejects)
    parsed = parse(text)
    assert tuple(parsed[0]) == REJECTS_CSV_HEADER
    assert parsed[1:] == [
        ["HighValue", "HV/HighValue_1.csv", "12", "invalid_email", "'a,b' is not valid", "a,b"],
        ["HighValue", "HV/HighValue_2.csv", "3", "malformed_row", 'line "1"\nand 2', ""],
    ]
    assert text.endswith("\r\n") and rejects_to_csv(rejects[:1], header=False).startswith("HighValue,")


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_cell_that_would_start_a_formula_is_shown_as_text(start):
    value = start + "HYPERLINK(\"http://x.example/\",\"open\")"
    rejects = [Reject(value, value, 1, RejectReason.INVALID_EMAIL, value, value)]

    row = parse(rejects_to_csv(rejects))[1]

    assert row == ["'" + value, "'" + value, "1", "invalid_email", "'" + value, "'" + value]


def test_safe_cells_are_left_alone():
    assert [neutralise(cell) for cell in ("jane@example.com", "a-b", "x=1", "", "'quoted", " =1")] == [
        "jane@example.com", "a-b", "x=1", "", "'quoted", " =1"]


def test_the_email_column_carries_the_raw_value_of_an_invalid_address():
    bound = bind(FieldMapping.from_dict(DEFAULT_MAPPING), CI_COLUMNS, "HighValue")
    fields = [""] * len(CI_COLUMNS)
    raws = ["=2+5@@Example.com", "Jane Doe@Example.com", "@sum(a1:a9)"]
    rejects = []
    for number, raw in enumerate(raws, 1):
        fields[bound.email] = raw
        rejects.append(map_row(bound, RawRow(number, list(fields), None)).reject("HighValue", "HV_1.csv", number))

    rows = parse(rejects_to_csv(rejects))[1:]

    assert [(row[3], row[5]) for row in rows] == [
        ("invalid_email", "'=2+5@@Example.com"), ("invalid_email", "Jane Doe@Example.com"),
        ("invalid_email", "'@sum(a1:a9)")]


def test_a_valid_address_that_starts_a_formula_is_neutralised_too():
    reject = Reject("Vip", "Vip.csv", 4, RejectReason.DUPLICATE, "the same email is on an earlier row",
                    "=2+5@example.com")

    assert parse(rejects_to_csv([reject]))[1][5] == "'=2+5@example.com"


def test_rows_are_written_as_the_rejects_arrive():
    out = io.StringIO()
    written_before: list[int] = []

    def rejects():
        for row in range(1, 4):
            written_before.append(out.getvalue().count("\r\n"))
            yield Reject("S", "S.csv", row, RejectReason.MISSING_EMAIL, "column 'Email' is empty")

    count = write_csv(rejects(), out)

    assert count == 3
    assert written_before == [1, 2, 3]  # the header, then one more row before each next reject is asked for
    assert parse(out.getvalue())[1:] == [["S", "S.csv", str(row), "missing_email", "column 'Email' is empty", ""]
                                         for row in range(1, 4)]


def test_lines_are_made_one_reject_at_a_time():
    pulled = []

    def rejects():
        for row in range(1, 1_000_000):
            pulled.append(row)
            yield Reject("S", "S.csv", row, RejectReason.FAILED, "gave up")

    lines = csv_lines(rejects(), header=False)

    assert [next(lines), next(lines)] == ["S,S.csv,1,failed,gave up,\r\n", "S,S.csv,2,failed,gave up,\r\n"]
    assert pulled == [1, 2]
