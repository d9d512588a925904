"""Planning a segment into chunks (one streaming pass per partition) and reading one chunk back
as rows, on a worker, from exactly the bytes and blob version it was planned on."""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from itertools import count, repeat
from typing import Iterator

from azure.storage.blob import ContainerClient

from ..csvscan import CsvScanError, RecordProblem, chunk_fields, iter_fields, scan_bytes
from ..rejects import RejectReason, RowRejection
from .blobs import blob_reader, check_text, scanner
from .model import Chunk, Partition, RawRow, Segment, SegmentChangedError, SegmentError, check_chunk_size


PIECE_ROWS = 5000  # a chunk of more rows (packed by an incremental run) is parsed this many rows at a time


def _check_header(segment: Segment, partition: Partition, header: list[str] | None) -> None:
    if header is None:
        return
    got = tuple(h.strip() for h in header)
    if tuple(c.lower() for c in got) != tuple(c.lower() for c in segment.columns):
        raise SegmentError(
            f"{partition.blob}: header row {list(got)} differs from the segment's columns {list(segment.columns)}"
        )


def plan_chunks(container: ContainerClient, segment: Segment, rows_per_chunk: int, **options) -> Iterator[Chunk]:
    """Chunks of `rows_per_chunk` records over all partitions, in order; one streaming pass each.

    Raises SegmentError naming the blob (and row) for an empty export, a broken header, a row
    longer than the record limit, or a blob replaced while planning.
    """
    if rows_per_chunk < 1:
        raise ValueError("rows_per_chunk must be at least 1")
    if segment.partitions and all(p.size == 0 for p in segment.partitions):
        names = ", ".join(p.blob for p in segment.partitions)
        raise SegmentError(
            f"segment {segment.name!r}: every partition is empty (0 bytes: {names}); "
            "refusing to read that as a segment without members"
        )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as executor:
        for partition in segment.partitions:
            yield from _plan_partition(container, segment, partition, rows_per_chunk, executor, options)


def _plan_partition(container: ContainerClient, segment: Segment, partition: Partition, rows_per_chunk: int,
                    executor: ThreadPoolExecutor, options: dict) -> Iterator[Chunk]:
    if partition.size == 0 and not segment.format.header:
        return  # an empty partition beside non-empty ones: a split with nothing in it
    partition_scanner = scanner(container, partition.blob, partition.etag, partition.size, segment.format, executor,
                                **options)
    try:
        check_text(partition_scanner)
        _check_header(segment, partition, partition_scanner.header())
        for span in partition_scanner.chunks(rows_per_chunk):
            chunk = Chunk(
                segment.name, partition.blob, partition.etag, span.start, span.end, span.first_row,
                span.row_count, segment.columns, segment.format,
            )
            if span.first_row == 1:
                check_chunk_size(chunk)
            yield chunk
    except CsvScanError as err:
        raise SegmentError(f"{partition.blob}: {err}") from None


def read_chunk(container: ContainerClient, chunk: Chunk) -> Iterator[RawRow]:
    """The chunk's rows, read from exactly [start, end) of the blob version it was planned on."""
    data = blob_reader(container, chunk.blob, chunk.etag)(chunk.start, chunk.end - chunk.start)
    if len(data) != chunk.end - chunk.start:
        raise SegmentChangedError(f"blob {chunk.blob}: expected bytes {chunk.start}-{chunk.end}, got {len(data)}")
    yield from rows_of(data, chunk)


def rows_of(data: bytes, chunk: Chunk) -> Iterator[RawRow]:
    """Rows of a chunk's bytes: fields, or a problem (wrong column count, undecodable bytes). A chunk of
    more than PIECE_ROWS rows is parsed PIECE_ROWS at a time."""
    if chunk.row_count <= PIECE_ROWS:
        return _rows(data, chunk)
    return _rows_in_pieces(data, chunk)


def _rows_in_pieces(data: bytes, chunk: Chunk) -> Iterator[RawRow]:
    """An incremental run packs the chunks whose rows mostly need no request into one unit of about
    a chunk's requests, which may span 100,000 rows: their fields parsed at once would hold about
    1 KB a row (100 MB a unit, per worker). The records are found again with the planner's scanner
    (the bytes hold records only), and parsed a piece at a time."""
    try:
        _, spans = scan_bytes(data, dataclasses.replace(chunk.format, header=False), PIECE_ROWS)
    except CsvScanError as err:
        raise SegmentError(f"{chunk.blob}: bytes {chunk.start}-{chunk.end}: {err}") from None
    found = sum(span.row_count for span in spans)
    if found != chunk.row_count:
        raise SegmentError(f"{chunk.blob}: bytes {chunk.start}-{chunk.end} hold {found} rows, "
                           f"the plan said {chunk.row_count}")
    for span in spans:
        piece = dataclasses.replace(chunk, start=chunk.start + span.start, end=chunk.start + span.end,
                                    first_row=chunk.first_row + span.first_row - 1, row_count=span.row_count)
        yield from _rows(data[span.start:span.end], piece)


def _rows(data: bytes, chunk: Chunk) -> Iterator[RawRow]:
    width = len(chunk.columns)
    fast = chunk_fields(data, chunk.format, chunk.row_count)
    if fast is None or len(fast[0]) != chunk.row_count:
        return _careful_rows(data, chunk, width)
    fields, problems = fast
    first = chunk.first_row
    # The hot path, all in C: RawRow(number, fields, None) for every record; the few records of
    # the wrong width or with undecodable bytes are replaced afterwards.
    rows = list(map(_new_tuple, repeat(RawRow), zip(count(first), fields, repeat(None))))
    widths = list(map(len, fields))
    if widths.count(width) != len(widths):
        for index, found in enumerate(widths):
            if found != width:
                rows[index] = _wrong_width(first + index, fields[index], width)
    for index, problem in problems.items():
        rows[index] = RawRow(first + index, None, RowRejection(problem.reason, problem.detail))
    return iter(rows)


_new_tuple = tuple.__new__  # tuple.__new__(RawRow, (number, fields, problem)) is RawRow(...) without Python code


def _wrong_width(number: int, row: list[str], width: int) -> RawRow:
    what = "a blank line" if not row else f"{len(row)} fields"
    return RawRow(number, None, RowRejection(RejectReason.MALFORMED_ROW, f"{what}, the segment has {width} columns"))


def _careful_rows(data: bytes, chunk: Chunk, width: int) -> Iterator[RawRow]:
    number = chunk.first_row
    for item in iter_fields(data, chunk.format, chunk.row_count):
        if isinstance(item, RecordProblem):
            yield RawRow(number, None, RowRejection(item.reason, item.detail))
        elif len(item) != width:
            yield _wrong_width(number, item, width)
        else:
            yield RawRow(number, item, None)
        number += 1
    if number - chunk.first_row != chunk.row_count:
        raise SegmentError(
            f"{chunk.blob}: bytes {chunk.start}-{chunk.end} hold {number - chunk.first_row} rows, "
            f"the plan said {chunk.row_count}"
        )
