"""How a partition's bytes are laid out (delimiter, quote, header, encoding), and the errors."""
from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Callable

from ..rejects import RejectReason

ReadFn = Callable[[int, int], bytes]  # (offset, length) -> bytes; shorter only at the end of the data

UTF8_BOM = b"\xef\xbb\xbf"
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


class CsvError(ValueError):
    """The root of this package's errors."""


class CsvScanError(CsvError):
    """The data cannot be split into records. `row` is the 1-based record number (header = 0)."""

    def __init__(self, message: str, *, row: int | None = None, offset: int | None = None):
        super().__init__(message)
        self.row = row
        self.offset = offset


class RecordProblem(CsvError):
    """One record cannot be turned into fields: why (the row's reject reason) and the detail."""

    def __init__(self, reason: RejectReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
