"""Chunk planning and reading: byte ranges on record boundaries, pinned, readable on their own."""
from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest
from azure.storage.blob import ContainerClient

from shared import blobhttp
from shared.csvscan import CsvFormat, scan_bytes
from shared.rejects import RejectReason, RowRejection
from shared.segments import (
    Chunk, SegmentChangedError, SegmentError, check_chunk_size, get_segment, plan_chunks, read_chunk, rows_of,
)
from shared.segments import chunks as chunks_module
from tests.segments import T1433
from tools.sample_export import generate_profiles


@pytest.mark.parametrize("quote_all,header,rows_per_chunk", [(False, False, 1), (True, True, 7), (False, True, 100)])
def test_chunks_through_azurite_equal_a_whole_file_csv_parse(segments_container, ci_export, quote_all, header,
                                                             rows_per_chunk):
    profiles = generate_profiles(60, seed=11, bad_share=0.0, quote_all=quote_all, tricky_share=0.2)
    assert sum(profiles.kind(i).value == "tricky" for i in range(60)) > 5
    ci_export({"HighValue": profiles}, partitions=2, header=header, when=T1433)
    segment = get_segment(segments_container, "HighValue")

    for partition in segment.partitions:
        whole = segments_container.download_blob(partition.blob).readall().decode()
        expected = list(csv.reader(io.StringIO(whole, newline="")))[1 if header else 0:]
        chunks = [c for c in plan_chunks(segments_container, segment, rows_per_chunk) if c.blob == partition.blob]
        rows = [row for chunk in chunks for row in read_chunk(segments_container, chunk)]
        assert [row.fields for row in rows] == expected
        assert [row.number for row in rows] == list(range(1, len(expected) + 1))
        assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
        assert chunks[-1].end == partition.size


def test_hostile_fields_survive_the_round_trip(segments_container):
    text = (
        '\ufeffEmail,Note\r\n'
        'a@example.com,"say ""hi"", then\r\nleave"\r\n'
        'b@example.com,plain\n'
        'c@example.com,"x,y"'  # no final line feed
    )
    segments_container.upload_blob("Vip.csv", text.encode())
    segment = get_segment(segments_container, "Vip")

    rows = [row for c in plan_chunks(segments_container, segment, 1) for row in read_chunk(segments_container, c)]

    assert segment.columns == ("Email", "Note")
    assert [r.fields for r in rows] == [
        ["a@example.com", 'say "hi", then\r\nleave'], ["b@example.com", "plain"], ["c@example.com", "x,y"]]


def test_a_chunk_travels_as_a_small_json_message_and_is_read_alone(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(40, seed=3)}, partitions=1, when=T1433)
    segment = get_segment(segments_container, "HighValue")
    chunks = list(plan_chunks(segments_container, segment, 10))

    message = json.dumps(chunks[2].to_dict())
    chunk = Chunk.from_dict(json.loads(message))

    assert chunk == chunks[2] and len(message.encode()) < 64 * 1024
    assert [row.number for row in read_chunk(segments_container, chunk)] == list(range(21, 31))


def test_chunk_reads_share_one_http_client_and_build_no_blob_client(segments_container, ci_export, monkeypatch):
    # A chunk is one ranged GET, sent by the container's blobhttp client: no SDK blob client (building one
    # was a fifth of a chunk read's CPU), and no reader built per chunk.
    ci_export({"Shared": generate_profiles(40, seed=5)}, partitions=2, when=T1433)
    chunks = list(plan_chunks(segments_container, get_segment(segments_container, "Shared"), 10))
    built = []
    monkeypatch.setattr(ContainerClient, "get_blob_client", lambda *args, **kwargs: built.append(args))
    readers = []
    init = blobhttp.BlobHttp.__init__
    monkeypatch.setattr(blobhttp.BlobHttp, "__init__",
                        lambda self, container: readers.append(container) or init(self, container))
    blobhttp.for_container.cache_clear()

    rows = [row.number for chunk in chunks for row in read_chunk(segments_container, chunk)]

    assert len(chunks) >= 4 and len(rows) == 40
    assert built == [] and readers == [segments_container]


def test_too_many_columns_for_a_queue_message():
    chunk = Chunk("S", "S.csv", "0x1", 0, 10, 1, 1, tuple(f"column_{i:05d}_" + "x" * 40 for i in range(1000)),
                  CsvFormat())
    with pytest.raises(SegmentError, match=r"segment 'S': a chunk description is \d+ bytes"):
        check_chunk_size(chunk)


def test_row_problems_are_reported_per_row():
    fmt = CsvFormat(header=False)
    data = b"a@x.com,A\r\nb@x.com,\xff\xfeB\r\n\r\nc@x.com,C,extra\r\nd@x.com\r\n"
    _, spans = scan_bytes(data, fmt, 10)
    chunk = Chunk("S", "S.csv", "0x1", spans[0].start, spans[0].end, 1, spans[0].row_count, ("Email", "Name"), fmt)

    rows = list(rows_of(data, chunk))

    assert [(r.number, r.fields, r.problem) for r in rows] == [
        (1, ["a@x.com", "A"], None),
        (2, None, RowRejection(RejectReason.UNDECODABLE, "byte 0xff in field 2 is not valid utf-8")),
        (3, None, RowRejection(RejectReason.MALFORMED_ROW, "a blank line, the segment has 2 columns")),
        (4, None, RowRejection(RejectReason.MALFORMED_ROW, "3 fields, the segment has 2 columns")),
        (5, None, RowRejection(RejectReason.MALFORMED_ROW, "1 fields, the segment has 2 columns")),
    ]
    assert all(type(r.problem.reason) is RejectReason for r in rows[1:])


def test_a_long_chunk_is_parsed_a_piece_at_a_time_into_the_same_rows(monkeypatch):
    """A unit an incremental run packed from many chunks is parsed PIECE_ROWS rows at a time (not its
    fields all at once): the same rows, numbers and problems, pieces cut between records only."""
    fmt = CsvFormat(header=False)
    records = b'a@x.com,"say ""hi"",\r\nthen"\r\nb@x.com,\xff\xfeB\r\n\r\nc@x.com,C,extra\r\nd@x.com,D\n' * 7
    _, spans = scan_bytes(records, fmt, 1000)
    chunk = Chunk("S", "S.csv", "0x1", 100, 100 + len(records), 11, spans[0].row_count, ("Email", "Name"), fmt)
    whole = list(rows_of(records, chunk))
    assert len(whole) == 35 and whole[0].fields == ["a@x.com", 'say "hi",\r\nthen'] and whole[-1].number == 45

    monkeypatch.setattr(chunks_module, "PIECE_ROWS", 3)
    assert list(rows_of(records, chunk)) == whole
    with pytest.raises(SegmentError, match="hold 35 rows, the plan said 36"):
        list(rows_of(records, dataclasses.replace(chunk, row_count=36)))


# ------------------------------------------------------------------ bad partitions, each with its message


def test_export_whose_partitions_are_all_empty(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(0)}, partitions=2, when=T1433)
    segment = get_segment(segments_container, "HighValue")

    with pytest.raises(SegmentError, match=r"segment 'HighValue': every partition is empty \(0 bytes"):
        list(plan_chunks(segments_container, segment, 10))


def test_ten_megabyte_single_line(segments_container):
    data = b"Email,Name\r\na@example.com,A\r\nb@example.com," + b"x" * (10 * 1024 * 1024) + b"\r\n"
    segments_container.upload_blob("Vip.csv", data)
    segment = get_segment(segments_container, "Vip")

    with pytest.raises(SegmentError, match=r"Vip.csv: row 2 \(starting at byte 29\) is longer than 1024 KiB"):
        list(plan_chunks(segments_container, segment, 10))


# ------------------------------------------------------------------ a blob replaced mid-run


def test_blob_replaced_after_planning_is_detected(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(30)}, partitions=1, when=T1433)
    segment = get_segment(segments_container, "HighValue")
    chunks = list(plan_chunks(segments_container, segment, 10))
    assert len(list(read_chunk(segments_container, chunks[0]))) == 10

    ci_export({"HighValue": generate_profiles(30, seed=7)}, partitions=1, when=T1433)  # same path, new bytes

    with pytest.raises(SegmentChangedError, match=rf"blob {chunks[1].blob} was replaced or deleted after it was planned"):
        list(read_chunk(segments_container, chunks[1]))


def test_blob_replaced_while_planning_is_detected(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(200)}, partitions=1, when=T1433)
    segment = get_segment(segments_container, "HighValue")
    plan = plan_chunks(segments_container, segment, 10, block_bytes=4096)
    next(plan)
    ci_export({"HighValue": generate_profiles(200, seed=7)}, partitions=1, when=T1433)

    with pytest.raises(SegmentChangedError, match="was replaced or deleted after it was planned"):
        list(plan)


def test_blob_deleted_after_planning(segments_container, ci_export):
    blobs = ci_export({"HighValue": generate_profiles(5)}, partitions=1, when=T1433)
    chunk = next(plan_chunks(segments_container, get_segment(segments_container, "HighValue"), 10))
    segments_container.delete_blob(blobs[0])

    with pytest.raises(SegmentChangedError, match=rf"blob {blobs[0]} was replaced or deleted"):
        list(read_chunk(segments_container, chunk))
