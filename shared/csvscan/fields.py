"""Fields of a chunk's records, by the fastest way that gives what `csv` gives, and the problem
of each record that cannot be used (undecodable bytes, a field over `csv`'s limit)."""
from __future__ import annotations

import csv
import io
import re
from itertools import repeat
from typing import Iterator

from ..rejects import RejectReason
from .format import CsvFormat, RecordProblem, canonical_encoding
from .grammar import grammar, strip_terminator


def decode_record(raw: bytes, fmt: CsvFormat) -> str:
    encoding = canonical_encoding(fmt.encoding)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise RecordProblem(
            RejectReason.UNDECODABLE,
            f"byte 0x{raw[err.start]:02x} at byte {err.start + 1} of the row is not valid {fmt.encoding}",
        ) from None


def parse_record(text: str, fmt: CsvFormat) -> list[str]:
    """Fields of one record (terminator already stripped)."""
    if not text:
        return []  # a blank line, as `csv` reads it
    if not fmt.quote or fmt.quote not in text:
        return text.split(fmt.delimiter)
    try:
        return next(csv.reader([text], delimiter=fmt.delimiter, quotechar=fmt.quote, strict=False))
    except csv.Error as err:
        # csv.Error has no code; "field larger than field limit (131072)" is its only message for that
        reason = RejectReason.FIELD_TOO_LONG if "field limit" in str(err) else RejectReason.MALFORMED_ROW
        raise RecordProblem(reason, f"cannot split the row into fields: {err}") from None


def split_records(data: bytes, fmt: CsvFormat) -> list[bytes]:
    """The records of a chunk's bytes (terminators stripped), exactly as the scanner delimited them."""
    if not fmt.quote or fmt.quote.encode() not in data:
        records = data.split(b"\n")
        if records[-1] == b"":
            records.pop()
        return [r[:-1] if r.endswith(b"\r") else r for r in records]
    out: list[bytes] = []
    pos = 0
    record = grammar(fmt).record
    while pos < len(data):
        m = record.match(data, pos)
        end = m.end() if m else len(data)
        out.append(strip_terminator(data[pos:end]))
        pos = end
    return out


def chunk_fields(
    data: bytes, fmt: CsvFormat, expected_rows: int | None = None
) -> tuple[list[list[str]], dict[int, RecordProblem]] | None:
    """Every record's fields of a chunk, and the problem of each record (by index) holding
    undecodable bytes; None when the chunk needs the record-by-record path of `iter_fields`.

    No quote -> records are lines, fields are `str.split`; quotes -> `csv` (see `_fast_rows`),
    trusted only when it finds the record count the scanner found (it would split more at a lone
    CR), and None when `csv` objects. A chunk with undecodable bytes is decoded once with
    surrogate escapes; only the records holding them are reported.
    """
    encoding = canonical_encoding(fmt.encoding)
    try:
        text, bad_bytes = data.decode(encoding), []
    except UnicodeDecodeError as err:
        text, bad_bytes = data.decode(encoding, "surrogateescape"), _undecodable_offsets(data, encoding, err)
    parsed = _fast_rows(text, data, fmt, expected_rows)
    if parsed is None:
        return None
    rows, multiline = parsed
    if expected_rows is not None and len(rows) != expected_rows:
        return None
    if not bad_bytes:
        return rows, {}
    if multiline is None:
        indexes = _rows_with_surrogates(rows)
    else:
        indexes = _rows_at(_lines_at(data, bad_bytes), multiline)
    problems = {}
    for index in indexes:
        problem = _undecodable_field(rows[index], encoding)
        if problem is not None:
            problems[index] = problem
    return rows, problems


def iter_fields(data: bytes, fmt: CsvFormat, expected_rows: int | None = None) -> Iterator[list[str] | RecordProblem]:
    """Fields of each record of a chunk's bytes, or the problem that record has.

    `chunk_fields` when its fast paths apply; anything else is parsed record by record.
    """
    fast = chunk_fields(data, fmt, expected_rows)
    if fast is None:
        for raw in split_records(data, fmt):
            try:
                yield parse_record(decode_record(raw, fmt), fmt)
            except RecordProblem as problem:
                yield problem
        return
    rows, problems = fast
    if not problems:
        yield from rows
        return
    for index, fields in enumerate(rows):
        yield problems.get(index, fields)


def _undecodable_offsets(data: bytes, encoding: str, first: UnicodeDecodeError) -> list[int]:
    """Where each undecodable sequence starts: decoding resumes after each, as the error handler
    would (a few strict decodes of the rest, far cheaper than searching the text for surrogates)."""
    offsets, view, base, err = [], memoryview(data), 0, first
    while True:
        offsets.append(base + err.start)
        base += err.end
        try:
            str(view[base:], encoding)
            return offsets
        except UnicodeDecodeError as next_err:
            err = next_err


def _lines_at(data: bytes, offsets: list[int]) -> list[int]:
    """0-based line (LF-terminated) of each offset, offsets ascending."""
    lines, line, counted = [], 0, 0
    for offset in offsets:
        line += data.count(b"\n", counted, offset)
        counted = offset
        lines.append(line)
    return lines


def _rows_at(lines: list[int], multiline: list[tuple[int, int]]) -> list[int]:
    """Record index of each line, given the (first line, line count) of every record that spans
    several lines; other records are one line each."""
    indexes = []
    for line in lines:
        extra = 0  # lines taken by the multi-line records before this one, beyond their first
        for first, count in multiline:
            if line < first:
                break
            if line < first + count:
                line = first
                break
            extra += count - 1
        index = line - extra
        if not indexes or indexes[-1] != index:
            indexes.append(index)
    return indexes


_SURROGATE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of an undecodable byte
# Joins the records of a chunk into one string to search: no decoder makes this code point (a
# high surrogate; surrogateescape makes low ones only), so it never occurs inside a field.
_RECORD_SEPARATOR = "\ud800"


def _rows_with_surrogates(rows: list[list[str]]) -> list[int]:
    """Indexes of the records holding undecodable bytes, by one search over all their fields
    (when the records' lines are not known)."""
    joined = _RECORD_SEPARATOR.join(map("".join, rows))
    indexes: list[int] = []
    index, counted_to = 0, 0
    for found in _SURROGATE.finditer(joined):
        index += joined.count(_RECORD_SEPARATOR, counted_to, found.start())
        counted_to = found.start()
        if not indexes or indexes[-1] != index:
            indexes.append(index)
    return indexes


def _fast_rows(
    text: str, data: bytes, fmt: CsvFormat, expected_rows: int | None
) -> tuple[list[list[str]], list[tuple[int, int]] | None] | None:
    """Rows of a whole decoded chunk and its multi-line records as (first line, line count)
    (None: not known), or None when the chunk needs the record-by-record path."""
    if not fmt.quote or fmt.quote.encode() not in data:
        return _line_rows(text, fmt.delimiter), []
    if expected_rows is None:
        return None
    multiline: list[tuple[int, int]] | None = []
    try:
        try:
            if text.count("\r") != text.count("\r\n"):
                raise _NotSparse  # a lone CR ends a record for `csv`: let it count them (below)
            if text.count(fmt.quote) * SPARSE_QUOTES < expected_rows:
                rows = _sparsely_quoted_rows(text, fmt, multiline)
            else:
                rows = _densely_quoted_rows(text, fmt, multiline)
        except _NotSparse:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter, quotechar=fmt.quote))
            multiline = None
    except csv.Error:
        return None
    return (rows, multiline) if len(rows) == expected_rows else None


# Below one quote per SPARSE_QUOTES records, only the records holding a quote go through `csv`
# (it walks every character in C, about 2.5 us for a 150-byte record); the others are lines split
# at the delimiter, several times faster. The result is the same as one `csv` pass over the chunk.
SPARSE_QUOTES = 4


class _NotSparse(Exception):
    """The chunk must go through `csv` as a whole (to give what that gives, errors included)."""


def _sparsely_quoted_rows(text: str, fmt: CsvFormat, multiline: list[tuple[int, int]]) -> list[list[str]]:
    """Rows of a chunk where few records hold a quote: those are parsed by `csv`, one at a time
    from the line the quote is on; the lines between are split. A record always starts a line.
    Appends (first line, line count) of each record spanning several lines to `multiline`."""
    quote, delimiter = fmt.quote, fmt.delimiter
    max_line = csv.field_size_limit()  # a longer line may hold a field `csv` refuses
    rows: list[list[str]] = []
    position = 0  # start of the next record
    line, counted = 0, 0  # line number of offset `counted`
    found = text.find(quote)
    while found != -1:
        line_start = text.rfind("\n", position, found) + 1 or position
        rows += _line_rows(text[position:line_start], delimiter, max_line)
        reader = csv.reader(_lines_from(text, line_start), delimiter=delimiter, quotechar=quote)
        rows.append(next(reader))
        if reader.line_num > 1:
            line += text.count("\n", counted, line_start)
            counted = line_start
            multiline.append((line, reader.line_num))
        position = line_start
        for _ in range(reader.line_num):  # past the lines the record took
            position = text.find("\n", position) + 1 or len(text)
        found = text.find(quote, position)
    rows += _line_rows(text[position:], delimiter, max_line)
    return rows


def _densely_quoted_rows(text: str, fmt: CsvFormat, multiline: list[tuple[int, int]]) -> list[list[str]]:
    """Rows of a chunk where most records hold quotes, as CDM's `CsvStyle.QuoteAlways` writes them.

    A line `"a","b",…,"z"` whose only quotes are the ones around its fields is exactly the record
    `csv` reads from it, split at `","` without walking every character; so is a line without any
    quote, split at the delimiter. Any other record (an escaped quote, a line end inside a field, a
    field quoted only in part) goes through `csv` from its first line. Appends (first line, line
    count) of each record spanning several lines to `multiline`."""
    quote, delimiter = fmt.quote, fmt.delimiter
    separator = quote + delimiter + quote
    max_line = csv.field_size_limit()  # a longer line may hold a field `csv` refuses
    rows: list[list[str]] = []
    append = rows.append
    position, line, size = 0, 0, len(text)
    while position < size:
        newline = text.find("\n", position)
        end = size if newline == -1 else newline + 1
        body = text[position:end].rstrip("\r\n") if newline != -1 else text[position:end]
        if len(body) <= max_line:
            if len(body) >= 2 and body[0] == quote and body[-1] == quote:
                fields = body[1:-1].split(separator)
                if body.count(quote) == 2 * len(fields):
                    append(fields)
                    position, line = end, line + 1
                    continue
            elif quote not in body:
                append(body.split(delimiter) if body else [])
                position, line = end, line + 1
                continue
        reader = csv.reader(_lines_from(text, position), delimiter=delimiter, quotechar=quote)
        append(next(reader))
        if reader.line_num > 1:
            multiline.append((line, reader.line_num))
        for _ in range(reader.line_num):  # past the lines the record took
            position = text.find("\n", position) + 1 or size
        line += reader.line_num
    return rows


def _lines_from(text: str, position: int) -> Iterator[str]:
    """The lines of text from position on, each with its LF (as `csv` wants them)."""
    while position < len(text):
        end = text.find("\n", position) + 1 or len(text)
        yield text[position:end]
        position = end


def _line_rows(text: str, delimiter: str, max_line: int | None = None) -> list[list[str]]:
    """Rows of records that hold no quote: lines split at the delimiter (a blank line: no fields).
    With max_line, raises _NotSparse for a longer line."""
    if not text:
        return []
    crs = text.count("\r")
    if crs and crs == text.count("\n") == text.count("\r\n") and text.endswith("\r\n"):
        lines = text[:-2].split("\r\n")  # all CRLF: the common case, no per-line stripping
    else:
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        if crs:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if max_line is not None and len(text) > max_line and max(map(len, lines)) > max_line:
        raise _NotSparse
    rows = list(map(str.split, lines, repeat(delimiter)))
    if "" in lines:  # "".split(",") is [""], `csv` reads a blank line as []
        for index, line in enumerate(lines):
            if not line:
                rows[index] = []
    return rows


def _undecodable_field(fields: list[str], encoding: str) -> RecordProblem | None:
    for number, value in enumerate(fields, 1):
        try:
            value.encode(encoding)
        except UnicodeEncodeError as err:
            byte = value[err.start].encode(encoding, "surrogateescape")[0]
            return RecordProblem(RejectReason.UNDECODABLE, f"byte 0x{byte:02x} in field {number} is not valid {encoding}")
    return None
