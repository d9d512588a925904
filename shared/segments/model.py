"""What a segment is: its current version (partitions pinned by ETag), the chunks it is cut into,
the rows read back, and the errors that stop it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from ..csvscan import CsvFormat
from ..rejects import RowRejection

LAYOUT_CI = "customerInsights"
LAYOUT_PLAIN = "plain"
MAX_CHUNK_JSON_BYTES = 32 * 1024  # a queue message holds 64 KB, base64 makes it 48 KB of JSON


class SegmentError(Exception):
    """A segment cannot be read; the message names the blob and, where it applies, the row."""


class SegmentNotFoundError(SegmentError):
    pass


class SegmentChangedError(SegmentError):
    """A blob was replaced or deleted after it was planned: its chunks would mix two versions."""


@dataclass(frozen=True)
class Partition:
    blob: str  # path inside the segments container
    etag: str
    size: int


@dataclass(frozen=True)
class Segment:
    name: str
    layout: str  # LAYOUT_CI | LAYOUT_PLAIN
    columns: tuple[str, ...]
    updated_at: datetime
    partitions: tuple[Partition, ...]
    format: CsvFormat
    source: str  # model.json path, or the plain CSV / folder path


@dataclass(frozen=True)
class Chunk:
    """One unit of work (one queue message): records [first_row, first_row + row_count) of a partition."""

    segment: str
    blob: str
    etag: str
    start: int  # byte offsets in the blob, end exclusive, on record boundaries
    end: int
    first_row: int  # 1-based data-row number within the partition
    row_count: int
    columns: tuple[str, ...]
    format: CsvFormat

    def to_dict(self) -> dict:
        return {
            "segment": self.segment, "blob": self.blob, "etag": self.etag, "start": self.start,
            "end": self.end, "firstRow": self.first_row, "rowCount": self.row_count,
            "columns": list(self.columns), "format": self.format.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Chunk":
        return cls(
            segment=d["segment"], blob=d["blob"], etag=d["etag"], start=int(d["start"]), end=int(d["end"]),
            first_row=int(d["firstRow"]), row_count=int(d["rowCount"]), columns=tuple(d["columns"]),
            format=CsvFormat.from_dict(d["format"]),
        )


class RawRow(NamedTuple):
    """One data row. A NamedTuple rather than a frozen dataclass: a run makes a million of them and
    this is the cheapest immutable typed record to create."""

    number: int  # 1-based data-row number within the partition
    fields: list[str] | None
    problem: RowRejection | None  # why a row that cannot be used is rejected


def check_chunk_size(chunk: Chunk) -> None:
    """A chunk must fit a queue message; huge column lists would not."""
    size = len(json.dumps(chunk.to_dict(), separators=(",", ":")).encode())
    if size > MAX_CHUNK_JSON_BYTES:
        raise SegmentError(
            f"segment {chunk.segment!r}: a chunk description is {size} bytes, over {MAX_CHUNK_JSON_BYTES} "
            "(too many or too long column names for a queue message)"
        )
