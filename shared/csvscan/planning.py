"""Chunk planning: one streaming pass over CSV bytes finds the header and the record boundaries
of every chunk, in C (regex, bytes.find, memcmp of structural bytes), not per character."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

from .fields import decode_record, parse_record
from .format import UTF8_BOM, CsvFormat, CsvScanError, ReadFn, RecordProblem, canonical_encoding
from .grammar import LineShape, grammar, one_record_shape, strip_terminator, structural_bytes

DEFAULT_BLOCK_BYTES = 8 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # no profile row is this long: a longer one is a broken file
MAX_CHUNK_BYTES = 8 * 1024 * 1024  # a chunk stays small enough for one worker download


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
        self._non_structural = structural_bytes(fmt) if fmt.quote else b""
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
        if count * 2 >= len(lines) and one_record_shape(self._fmt).fullmatch(line):
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
