"""Field reading: a chunk's records as fields, and each bad record's problem with its reason."""
from __future__ import annotations

import csv

import pytest

from shared.csvscan import CsvFormat, RecordProblem, iter_fields
from shared.rejects import RejectReason

FMT = CsvFormat(header=False)


@pytest.mark.parametrize("expected_rows,detail", [
    (2, "byte 0xff in field 2 is not valid utf-8"),  # the whole chunk at once
    (None, "byte 0xff at byte 10 of the row is not valid utf-8"),  # record by record
])
def test_undecodable_bytes_are_the_problem_of_their_record(expected_rows, detail):
    items = list(iter_fields(b'a@x.com,A\r\nb@x.com,"\xff"\r\n', FMT, expected_rows))

    assert items[0] == ["a@x.com", "A"]
    assert isinstance(items[1], RecordProblem)
    assert (items[1].reason, items[1].detail, str(items[1])) == (RejectReason.UNDECODABLE, detail, detail)


def test_a_field_over_the_csv_limit_is_too_long():
    limit = csv.field_size_limit()
    data = b'a@x.com,"' + b"x" * (limit + 1) + b'"\r\nb@x.com,B\r\n'

    items = list(iter_fields(data, FMT))

    assert isinstance(items[0], RecordProblem) and items[0].reason is RejectReason.FIELD_TOO_LONG
    assert items[0].detail.startswith("cannot split the row into fields: field larger than field limit")
    assert items[1] == ["b@x.com", "B"]
