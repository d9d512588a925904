"""The record grammar in bytes: possessive regexes that delimit records without backtracking, and
the line shapes that let the planner recognise runs of records by comparing bytes."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .format import CsvFormat


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


def structural_bytes(fmt: CsvFormat) -> bytes:
    """The bytes `bytes.translate` deletes to keep only the structural ones."""
    keep = (fmt.delimiter + fmt.quote + "\r\n").encode("ascii")
    return bytes(b for b in range(256) if b not in keep)


def one_record_shape(fmt: CsvFormat) -> re.Pattern:
    """Structural lines that are provably one record each (see LineShape): quoted fields only."""
    D, Q = re.escape(fmt.delimiter.encode("ascii")), re.escape(fmt.quote.encode("ascii"))
    return re.compile(Q + Q + b"(?:" + D + Q + Q + b")*+\r?\n")


def strip_terminator(record: bytes | str):
    """A record without its LF or CRLF (and a final CR at the very end of the data)."""
    if record.endswith(b"\n" if isinstance(record, bytes) else "\n"):
        record = record[:-1]
    if record.endswith(b"\r" if isinstance(record, bytes) else "\r"):
        record = record[:-1]
    return record
