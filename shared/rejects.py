"""Rejected rows: one reason enum from the CSV scanner to the rejects file a user downloads.

Where a row is read or mapped, a `RowRejection` says why it is not a contact: a `RejectReason`,
a detail for people, and the email when one is known. The run places it (`Reject`: segment,
partition, 1-based data row) and writes it to the run's rejects file, a CSV (RFC 4180, CRLF) with
the columns of `REJECTS_CSV_HEADER`, row by row.

The file is safe to open in a spreadsheet: a cell that starts with `=`, `+`, `-`, `@`, tab or CR
would be run as a formula (`=2+5@example.com` is a valid address; a segment name or a detail may
start with `-`), so such a cell gets a leading `'` (OWASP's advice against CSV injection) and is
shown as text.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Iterator, NamedTuple, TextIO

__all__ = [
    "REJECTS_CSV_HEADER", "Reject", "RejectReason", "RowRejection", "csv_lines", "neutralise",
    "rejects_to_csv", "write_csv",
]

REJECTS_CSV_HEADER = ("segment", "partition", "row", "reason", "detail", "email")
_HEADER_LINE = ",".join(REJECTS_CSV_HEADER) + "\r\n"


class RejectReason(str, Enum):
    """Why a row is not a contact; the value is what the rejects file and the API show."""

    MISSING_EMAIL = "missing_email"
    INVALID_EMAIL = "invalid_email"
    DUPLICATE = "duplicate"
    MALFORMED_ROW = "malformed_row"
    UNDECODABLE = "undecodable"
    FIELD_TOO_LONG = "field_too_long"
    INVALID_VALUE = "invalid_value"  # a mapped value (birthdate, custom property) that cannot be converted
    CONTACT_LIMIT = "contact_limit"
    OMNISEND_REJECTED = "omnisend_rejected"
    FAILED = "failed"


@dataclass(frozen=True)
class Reject:
    """One row of the rejects file. `row` is the 1-based data row within the partition."""

    segment: str
    partition: str
    row: int
    reason: RejectReason
    detail: str
    email: str = ""


class RowRejection(NamedTuple):  # a NamedTuple: made for every bad row on the read path
    """Why a row read from a partition is rejected, before the run places it (see `reject`).
    `email` is the address as the row holds it when there is one (for `invalid_email`, the raw
    value that failed validation)."""

    reason: RejectReason
    detail: str
    email: str = ""

    def reject(self, segment: str, partition: str, row: int) -> Reject:
        return Reject(segment, partition, row, self.reason, self.detail, self.email)


# ---------------------------------------------------------------- the rejects file

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """The cell as a spreadsheet shows it as text: a leading `'` when it would start a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _cells(reject: Reject) -> tuple[str, ...]:
    return (
        neutralise(reject.segment), neutralise(reject.partition), neutralise(str(reject.row)),
        RejectReason(reject.reason).value, neutralise(reject.detail), neutralise(reject.email),
    )


class _LastLine:
    """The file a csv.writer writes to, keeping only the last row (writerow writes a row at once)."""

    __slots__ = ("text",)

    def write(self, text: str) -> None:
        self.text = text


def csv_lines(rejects: Iterable[Reject], *, header: bool = True) -> Iterator[str]:
    """The rejects file, one CRLF-terminated line at a time (a line may hold quoted line ends);
    `header=False` for rows to append to an existing file."""
    if header:
        yield _HEADER_LINE
    last = _LastLine()
    writerow = csv.writer(last, lineterminator="\r\n").writerow
    for reject in rejects:
        writerow(_cells(reject))
        yield last.text


def write_csv(rejects: Iterable[Reject], out: TextIO, *, header: bool = True) -> int:
    """Writes the rejects file to a text file-like, row by row; returns the number of rejects."""
    lines = csv_lines(rejects, header=header)
    if header:
        out.write(next(lines))
    written = 0
    for line in lines:
        out.write(line)
        written += 1
    return written


def rejects_to_csv(rejects: Iterable[Reject], *, header: bool = True) -> str:
    """The rejects of one chunk as one string (at most a chunk's rows); `csv_lines` or `write_csv`
    for anything larger."""
    return "".join(csv_lines(rejects, header=header))
