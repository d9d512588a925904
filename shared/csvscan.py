"""Byte-level CSV record scanning: record boundaries found in C (regex, bytes.find), not per character.

The grammar is the one Python's `csv` module reads (RFC 4180, tolerant): a quote opens a quoted
field only at the start of a field; inside it, a doubled quote is a literal quote and delimiters,
CR and LF are data; a quote anywhere else is a literal character. A record ends at an LF outside
quotes; a CR just before that LF belongs to the terminator (CRLF). The last record may lack its
LF. A lone CR outside quotes is data, not a line break (Customer Insights never writes old-Mac
line ends, and treating it as data keeps one rule for the planner and the reader).

The scanner works over a `read(offset, length) -> bytes` function, so the same code plans a blob
(ranged downloads) and a bytes object in tests. Memory is one block plus at most one record.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from itertools import repeat
from typing import Callable, Iterator

from .rejects import RejectReason

ReadFn = Callable[[int, int], bytes]  # (offset, length) -> bytes; shorter only at the end of the data

UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_BLOCK_BYTES = 8 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # no profile row is this long: a longer one is a broken file
MAX_CHUNK_BYTES = 8 * 1024 * 1024  # a chunk stays small enough for one worker download
# Codecs in which every byte < 0x80 means its ASCII character, so LF, quote and delimiter can be
# found in the raw bytes. (UTF-16 and friends are not: Customer Insights writes UTF-8.)
SUPPORTED_ENCODINGS = {"utf-8": "utf-8", "ascii": "ascii", "latin-1": "latin-1", "cp1252": "cp1252"}


@dataclass(frozen=True)
class CsvFormat:
    """How a partition's bytes are laid out. `quote` "" means no quoting at all (QuoteStyle.None)."""

    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        problems = []
        if len(self.delimiter) != 1 or not self.delimiter.isascii() or self.delimiter in "\r\n":
            problems.append(f"delimiter {self.delimiter!r} must be one ASCII character other than CR/LF")
        if len(self.quote) > 1 or not self.quote.isascii() or self.quote in ("\r", "\n"):
            problems.append(f"quote {self.quote!r} must be one ASCII character (or empty for none)")
        if self.quote and self.quote == self.delimiter:
            problems.append("quote and delimiter must differ")
        if canonical_encoding(self.encoding) is None:
            problems.append(
                f"encoding {self.encoding!r} is not supported (use UTF-8; also ASCII, Latin-1, Windows-1252)"
            )
        if problems:
            raise ValueError("invalid CSV format: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return {"delimiter": self.delimiter, "quote": self.quote, "header": self.header, "encoding": self.encoding}

    @classmethod
    def from_dict(cls, d: dict) -> "CsvFormat":
        return cls(delimiter=d["delimiter"], quote=d["quote"], header=bool(d["header"]), encoding=d["encoding"])


def canonical_encoding(name: str) -> str | None:
    """The codec name to decode with, or None when the encoding is not ASCII-compatible/supported."""
    try:
        codec = codecs.lookup(name.strip().replace("_", "-")).name
    except LookupError:
        return None
    aliases = {"utf-8-sig": "utf-8", "iso8859-1": "latin-1", "windows-1252": "cp1252"}
    codec = aliases.get(codec, codec)
    return SUPPORTED_ENCODINGS.get(codec)


class CsvScanError(ValueError):
    """The data cannot be split into records. `row` is the 1-based record number (header = 0)."""

    def __init__(self, message: str, *, row: int | None = None, offset: int | None = None):
        super().__init__(message)
        self.row = row
        self.offset = offset


class RecordProblem(ValueError):
    """One record cannot be turned into fields: why (the row's reject reason) and the detail."""

    def __init__(self, reason: RejectReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Grammar:
    """Compiled record patterns for one (delimiter, quote) pair, in bytes."""

    source: bytes
    record: re.Pattern  # one record, LF-terminated

    def records(self, n: int) -> re.Pattern:
        """Exactly n records in one match: the fastest way through densely quoted data."""
        key = (self.source, n)
        if key not in _n_cache:
            _n_cache[key] = re.compile(self.source + b"{%d}" % n)
        return _n_cache[key]


def _record_pattern(d: bytes, q: bytes) -> bytes:
    """Regex source of one record; possessive throughout, so it never backtracks."""
    if not q:
        return b"(?>[^\\n]*+\\n)"
    D, Q = re.escape(d), re.escape(q)
    quoted = Q + b"[^" + Q + b"]*+(?:" + Q + Q + b"[^" + Q + b"]*+)*+" + Q
    # A field: quoted (then, as `csv` does, any junk up to the delimiter), unquoted (not starting
    # with a quote; later quotes are literal), or empty. Only running out of data can fail it.
    field = b"(?:" + quoted + b"[^" + D + b"\\n]*+|[^" + D + Q + b"\\n][^" + D + b"\\n]*+|)"
    return b"(?>" + field + b"(?:" + D + field + b")*+\\n)"


_grammar_cache: dict[tuple[str, str], Grammar] = {}
_n_cache: dict[tuple[bytes, int], re.Pattern] = {}


def grammar(fmt: CsvFormat) -> Grammar:
    key = (fmt.delimiter, fmt.quote)
    if key not in _grammar_cache:
        source = _record_pattern(fmt.delimiter.encode("ascii"), fmt.quote.encode("ascii"))
        _grammar_cache[key] = Grammar(source, re.compile(source))
    return _grammar_cache[key]


@dataclass(frozen=True)
class LineShape:
    """The structural bytes (quote, delimiter, CR, LF; every other byte deleted) of the line most
    records of a densely quoted file share, e.g. `"","",""\r\n` for three quoted fields.

    Why a line of this shape is exactly one record: between two delimiters (or a line end) it holds
    exactly two quotes and no quote follows the second. If the field starts with the first quote,
    that quote opens, the second closes and anything after it up to the delimiter is junk; if not,
    the field is unquoted and both are literal. Either way the grammar is outside quotes at every
    delimiter and at the LF. So a run of such lines can be recognised by comparing the structural
    bytes with `line` repeated (memcmp), without walking the fields.
    """

    line: bytes
    levels: tuple[tuple[int, bytes], ...]  # (n, line * n) for n = ..., 4, 2, 1: whole runs compared at once

    @classmethod
    def of(cls, line: bytes, most_lines: int) -> "LineShape":
        sizes = [1 << power for power in range(max(1, most_lines).bit_length())]
        return cls(line, tuple((size, line * size) for size in reversed(sizes)))

    def leading_lines(self, structure: bytes, at: int, most: int) -> int:
        """How many lines of this shape (at most `most`) `structure` holds from `at`: binary lifting
        over the power-of-two runs, about log2(most) memcmps (one when the first line differs)."""
        if most < 1 or not structure.startswith(self.line, at):
            return 0
        good, at = 1, at + len(self.line)
        for size, run in self.levels:
            if size <= most - good and structure.startswith(run, at):
                good += size
                at += len(run)
        return good


def _structural_bytes(fmt: CsvFormat) -> bytes:
    """The bytes `bytes.translate` deletes to keep only the structural ones."""
    keep = (fmt.delimiter + fmt.quote + "\r\n").encode("ascii")
    return bytes(b for b in range(256) if b not in keep)


def _one_record_shape(fmt: CsvFormat) -> re.Pattern:
    """Structural lines that are provably one record each (see LineShape): quoted fields only."""
    D, Q = re.escape(fmt.delimiter.encode("ascii")), re.escape(fmt.quote.encode("ascii"))
    return re.compile(Q + Q + b"(?:" + D + Q + Q + b")*+\r?\n")


@dataclass(frozen=True)
class ChunkSpan:
    """Records [first_row, first_row + row_count) occupying bytes [start, end) of the data."""

    start: int
    end: int
    first_row: int
    row_count: int


class CsvScanner:
    """One streaming pass over CSV bytes: the header (if any), then chunks of records."""

    def __init__(
        self,
        read: ReadFn,
        size: int,
        fmt: CsvFormat,
        *,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ):
        self._read = read
        self._size = size
        self._fmt = fmt
        self._grammar = grammar(fmt)
        self._quote = fmt.quote.encode("ascii")
        self._quoted_records = 0  # in the last chunk planned line by line
        self._non_structural = _structural_bytes(fmt) if fmt.quote else b""
        self._shape: LineShape | None = None  # of most lines, once learned (densely quoted data only)
        self._shape_learned = not fmt.quote
        self._shape_pause = 0  # chunks to plan without the shape after one it did not suit
        self._other_shapes = 0  # records of another shape in the last chunk planned by shape
        self._line_bytes = 128  # average line length seen, to guess where the n-th line ends
        # Structural bytes of _buf[.. window end] from the position where the last chunk planned by
        # shape ended: (that position, structural bytes, offset in them, window end). The next chunk
        # goes on with them when it starts there (and the buffer was not refilled).
        self._window: tuple[int, bytes, int, int] | None = None
        self._block = max(1, block_bytes)
        self._max_record = max_record_bytes
        self._buf = b""
        self._base = 0  # offset of _buf[0] in the data
        self._p = 0  # position in _buf of the next record
        self._rows = 0  # records consumed so far, header included
        self._header_done = False
        self._fill_first()

    @property
    def offset(self) -> int:
        """Offset of the next unread record."""
        return self._base + self._p

    def _fill_first(self) -> None:
        self._buf = self._read(0, min(self._block, self._size)) if self._size else b""
        while len(self._buf) < len(UTF8_BOM) and not self._eof:  # tiny blocks (tests): see the BOM whole
            self._refill()
        if canonical_encoding(self._fmt.encoding) == "utf-8" and self._buf.startswith(UTF8_BOM):
            self._p = len(UTF8_BOM)

    @property
    def _eof(self) -> bool:
        return self._base + len(self._buf) >= self._size

    def _refill(self) -> None:
        """Drop consumed bytes, append the next block."""
        loaded = self._base + len(self._buf)
        more = self._read(loaded, min(self._block, self._size - loaded))
        if not more:
            raise CsvScanError(f"data ended at byte {loaded}, expected {self._size} bytes", offset=loaded)
        self._buf = self._buf[self._p:] + more
        self._window = None
        self._base += self._p
        self._p = 0

    def _next_record_end(self) -> int | None:
        """Buffer position after the next record (refilling as needed); None at end of data."""
        record = self._grammar.record
        while True:
            if self._p >= len(self._buf) and self._eof:
                return None
            m = record.match(self._buf, self._p)
            if m:
                return m.end()
            if self._eof:  # the last record has no line feed (or an unclosed quote runs to the end)
                return len(self._buf)
            if len(self._buf) - self._p > self._max_record:
                row = self._rows + 1 - int(self._fmt.header)
                what = "the header row" if row == 0 else f"row {row}"
                raise CsvScanError(
                    f"{what} (starting at byte {self.offset}) is longer than {self._max_record // 1024} KiB "
                    "without a record end: not a file of profiles, or a quoted field that is never closed",
                    row=row,
                    offset=self.offset,
                )
            self._refill()

    def _plain_lines_first(self, n: int) -> int | None:
        """End of the next n records, found line by line with bytes.find; only a line holding a quote
        goes through the record grammar (quoted fields may hold line feeds). None: buffer too short."""
        buf, record = self._buf, self._grammar.record
        pos = self._p
        next_quote = self._find_quote(pos)
        self._quoted_records = 0
        for _ in range(n):
            end = buf.find(b"\n", pos) + 1
            if not end:
                return None
            if end > next_quote:  # this record holds a quote: let the grammar delimit it
                m = record.match(buf, pos)
                if not m:
                    return None
                end = m.end()
                next_quote = self._find_quote(end)
                self._quoted_records += 1
            pos = end
        return pos

    def _shaped_records_first(self, n: int) -> int | None:
        """End of the next n records, found from the structural bytes (see LineShape): a run of lines
        of the common shape is that many records, checked with one comparison; a record of any
        other shape goes through the grammar. None: the buffer holds fewer than n records."""
        shape, buf, record, non_structural = self._shape, self._buf, self._grammar.record, self._non_structural
        width = len(shape.line)
        pos, left, others = self._p, n, 0
        if self._window is not None and self._window[0] == pos:
            _, structure, at, window_end = self._window
        else:  # structural bytes of buf[pos':window_end], offset `at` in them <-> pos
            structure, at, window_end = b"", 0, pos
        while left:
            if window_end < len(buf) and structure.find(b"\n", at) == -1:
                window_end = min(len(buf), pos + 2 * left * self._line_bytes + 4096)  # about two chunks
                structure, at = buf[pos:window_end].translate(None, non_structural), 0
            good = shape.leading_lines(structure, at, left)
            if good:
                pos = self._after_lines(pos, good)
                at += good * width
                left -= good
                continue
            m = record.match(buf, pos)
            if not m:
                return None
            end = m.end()
            if end <= window_end:
                at += len(buf[pos:end].translate(None, non_structural))
            else:  # the record ran past the window: start a new one after it
                structure, at, window_end = b"", 0, end
            pos = end
            left -= 1
            others += 1
        self._other_shapes = others
        self._window = (pos, structure, at, window_end)
        return pos

    def _after_lines(self, pos: int, count: int) -> int:
        """Position after the count-th LF from pos (the caller knows there are that many): one
        bytes.count up to a guess from the average line length, then a few finds to correct it."""
        buf = self._buf
        if count <= 4:
            for _ in range(count):
                pos = buf.find(b"\n", pos) + 1
            return pos
        end = min(len(buf), pos + count * self._line_bytes)
        found = buf.count(b"\n", pos, end)
        if found < count:
            for _ in range(count - found):
                end = buf.find(b"\n", end) + 1
        else:
            for _ in range(found - count + 1):
                end = buf.rfind(b"\n", pos, end)
            end += 1
        self._line_bytes = max(1, (end - pos) // count)
        return end

    def _learn_shape(self, rows_per_chunk: int) -> None:
        """The structural line most of the first lines share, if it is provably one record."""
        head = self._buf[self._p:self._p + 64 * 1024].translate(None, self._non_structural)
        lines = head.split(b"\n", 64)[:-1]
        if not lines and not self._eof:
            return  # not one whole line in the buffer yet: try again at the next chunk
        self._shape_learned = True
        if not lines:
            return
        line, count = Counter(lines).most_common(1)[0]
        line += b"\n"
        if count * 2 >= len(lines) and _one_record_shape(self._fmt).fullmatch(line):
            self._shape = LineShape.of(line, rows_per_chunk)

    def _next_chunk_end(self, n: int) -> int | None:
        """End of the next n records by the fastest way that suits the data, None when the buffer
        holds fewer. Whichever way suited the previous chunk goes first."""
        if not self._shape_learned:
            self._learn_shape(n)
        if self._shape is not None and not self._shape_pause:
            end = self._shaped_records_first(n)
            if end is not None and self._other_shapes * 2 > n:
                self._shape_pause = 16  # mostly other shapes: the grammar alone is faster for a while
            return end
        self._shape_pause = max(0, self._shape_pause - 1)
        if self._quoted_records * 2 > n:
            return self._records_at_once(self._grammar.records(n)) or self._plain_lines_first(n)
        return self._plain_lines_first(n)

    def _find_quote(self, pos: int) -> int:
        found = self._buf.find(self._quote, pos) if self._quote else -1
        return len(self._buf) if found == -1 else found

    def _records_at_once(self, many: re.Pattern) -> int | None:
        """End of the next N records (one regex match), None when the buffer holds fewer."""
        m = many.match(self._buf, self._p)
        return m.end() if m else None

    def encoding_problem_at_start(self) -> str | None:
        """Why the data is not text in the format's encoding at all, else None.

        Judged on the first block: NUL bytes (UTF-16), or as many lines with undecodable bytes as
        lines whose non-ASCII bytes decode (a Latin-1 file). A stray bad byte among good text is
        left to the reader, which rejects that one row.
        """
        head = self._buf[: 1024 * 1024]
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
            return "is not UTF-8 text (it holds NUL bytes: UTF-16?); export it as UTF-8"
        encoding = canonical_encoding(self._fmt.encoding)
        lines = head.split(b"\n")
        if not self._eof or len(self._buf) > len(head):
            lines.pop()  # may end inside a character
        elif lines[-1] == b"":
            lines.pop()
        good, bad, first_bad = 0, 0, None
        for number, line in enumerate(lines, 1):
            if line.isascii():
                continue
            try:
                line.decode(encoding)
                good += 1
            except UnicodeDecodeError as err:
                bad += 1
                first_bad = first_bad or (number, line[err.start])
        if bad and bad >= good:
            line_number, byte = first_bad
            return (
                f"is not valid {self._fmt.encoding}: {bad} of the first {len(lines)} lines hold bytes that "
                f"do not decode (first: 0x{byte:02x} on line {line_number}); save the file as "
                f"{self._fmt.encoding} (is it Latin-1/Windows-1252?)"
            )
        return None

    def header(self) -> list[str] | None:
        """The header record's fields (format with header), else None. Call before `chunks`."""
        if self._header_done or not self._fmt.header:
            self._header_done = True
            return None
        self._header_done = True
        end = self._next_record_end()
        if end is None:
            raise CsvScanError("is empty: expected a header row", row=0, offset=0)
        raw = strip_terminator(self._buf[self._p:end])
        self._p = end
        self._rows = 1
        try:
            return parse_record(decode_record(raw, self._fmt), self._fmt)
        except RecordProblem as problem:
            raise CsvScanError(f"header row: {problem.detail}", row=0, offset=0) from None

    def chunks(self, rows_per_chunk: int, *, max_chunk_bytes: int = MAX_CHUNK_BYTES) -> Iterator[ChunkSpan]:
        """Spans of `rows_per_chunk` records (fewer for the last, or when one would pass max_chunk_bytes)."""
        if rows_per_chunk < 1:
            raise ValueError("rows_per_chunk must be at least 1")
        self.header()
        first_data_row = 1
        start, rows = self.offset, 0
        while True:
            if rows == 0:
                end = self._next_chunk_end(rows_per_chunk)
                if end is None and not self._eof and len(self._buf) - self._p <= min(self._block, self._max_record):
                    # The chunk straddles the block end: load the next block and try again. (With no
                    # more left than one record may hold, the record-by-record path below would
                    # also refill before it could find any record too long: same errors.)
                    self._refill()
                    end = self._next_chunk_end(rows_per_chunk)
                if end is not None and end - self._p <= max_chunk_bytes:  # the common case: N plain records
                    self._p = end
                    self._rows += rows_per_chunk
                    yield ChunkSpan(start, self.offset, first_data_row, rows_per_chunk)
                    first_data_row += rows_per_chunk
                    start = self.offset
                    continue
            end = self._next_record_end()
            if end is None:
                break
            self._p = end
            self._rows += 1
            rows += 1
            if rows == rows_per_chunk or self.offset - start >= max_chunk_bytes:
                yield ChunkSpan(start, self.offset, first_data_row, rows)
                first_data_row += rows
                start, rows = self.offset, 0
        if rows:
            yield ChunkSpan(start, self.offset, first_data_row, rows)


def scan_bytes(
    data: bytes, fmt: CsvFormat, rows_per_chunk: int, *, max_chunk_bytes: int = MAX_CHUNK_BYTES, **options
) -> tuple[list[str] | None, list[ChunkSpan]]:
    """Header and chunk spans of an in-memory CSV (tests, small files)."""
    scanner = CsvScanner(lambda offset, length: data[offset:offset + length], len(data), fmt, **options)
    return scanner.header(), list(scanner.chunks(rows_per_chunk, max_chunk_bytes=max_chunk_bytes))


def strip_terminator(record: bytes | str):
    """A record without its LF or CRLF (and a final CR at the very end of the data)."""
    if record.endswith(b"\n" if isinstance(record, bytes) else "\n"):
        record = record[:-1]
    if record.endswith(b"\r" if isinstance(record, bytes) else "\r"):
        record = record[:-1]
    return record


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
