"""Chunk planning and reading: byte ranges on record boundaries, pinned, readable on their own."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from shared.csvscan import CsvFormat, CsvScanError, scan_bytes
from shared.mapping import FieldMapping, MappedContact, bind, email_key, map_row
from shared.rejects import RejectReason, RowRejection
from shared.segments import Chunk, SegmentError, check_chunk_size, get_segment, plan_chunks, read_chunk, rows_of
from tools.sample_export import DEFAULT_MAPPING, generate_profiles, partition_bounds

WHEN = datetime(2021, 3, 1, 9, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("quote_all,header,rows_per_chunk", [(False, False, 1), (True, True, 7), (False, True, 100)])
def test_chunks_through_azurite_equal_a_whole_file_csv_parse(segments_container, ci_export, quote_all, header,
                                                             rows_per_chunk):
    profiles = generate_profiles(60, seed=11, bad_share=0.0, quote_all=quote_all, tricky_share=0.2)
    assert sum(profiles.kind(i).value == "tricky" for i in range(60)) > 5
    ci_export({"HighValue": profiles}, partitions=2, header=header, when=WHEN)
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
    ci_export({"HighValue": generate_profiles(40, seed=3)}, partitions=1, when=WHEN)
    segment = get_segment(segments_container, "HighValue")
    chunks = list(plan_chunks(segments_container, segment, 10))

    message = json.dumps(chunks[2].to_dict())
    chunk = Chunk.from_dict(json.loads(message))

    assert chunk == chunks[2] and len(message.encode()) < 64 * 1024
    assert [row.number for row in read_chunk(segments_container, chunk)] == list(range(21, 31))


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


def test_unclosed_quote_is_named_with_its_row():
    data = b'a,b\n"never closed,' + b"x" * 5000
    with pytest.raises(CsvScanError, match=r"row 2 \(starting at byte 4\) is longer than 1 KiB"):
        scan_bytes(data, CsvFormat(header=False), 10, block_bytes=512, max_record_bytes=1024)


def test_chunks_stop_early_at_the_byte_cap():
    data = b"".join(b"%d,%s\n" % (i, b"x" * 100) for i in range(50))
    _, spans = scan_bytes(data, CsvFormat(header=False), 1000, max_chunk_bytes=1000)
    assert [s.row_count for s in spans][:3] == [10, 10, 10] and sum(s.row_count for s in spans) == 50


def test_generated_export_maps_to_exactly_the_expected_outcomes(segments_container, ci_export):
    """Every row ends as exactly one outcome, and it is the one the generator says."""
    profiles = generate_profiles(3000, seed=21, bad_share=0.03, duplicate_share=0.02)
    ci_export({"HighValue": profiles}, partitions=3, when=WHEN)
    segment = get_segment(segments_container, "HighValue")
    bound = bind(FieldMapping.from_dict(DEFAULT_MAPPING), segment.columns, segment.name)
    expected = {}
    for partition, (start, stop) in zip(segment.partitions, partition_bounds(profiles.count, 3)):
        for e in profiles.expectations(start, stop):
            expected[(partition.blob, e.row - start)] = (e.reason, e.email)

    seen, outcomes = set(), {}
    for chunk in plan_chunks(segments_container, segment, 250):
        for row in read_chunk(segments_container, chunk):
            result = map_row(bound, row)
            if isinstance(result, MappedContact):
                key = email_key(result.email)
                outcome = (RejectReason.DUPLICATE if key in seen else None, result.email)
                seen.add(key)
            else:
                outcome = (result.reason, None)
            outcomes[(chunk.blob, row.number)] = outcome

    assert len(outcomes) == 3000
    normalized = {k: (reason, email if reason in (None, RejectReason.DUPLICATE) else None)
                  for k, (reason, email) in expected.items()}
    assert outcomes == normalized
    reasons = {reason for reason, _ in outcomes.values()}
    assert reasons == {None, RejectReason.DUPLICATE, RejectReason.MISSING_EMAIL, RejectReason.INVALID_EMAIL,
                       RejectReason.MALFORMED_ROW, RejectReason.UNDECODABLE, RejectReason.FIELD_TOO_LONG}
