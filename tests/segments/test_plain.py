"""The plain layout against Azurite: a CSV or a folder of CSVs, each with a header row."""
from __future__ import annotations

import pytest

from shared.mapping import FieldMapping, MappingError, bind
from shared.segments import LAYOUT_PLAIN, SegmentError, get_segment, plan_chunks
from tests.segments import rows_of_segment
from tools.sample_export import DEFAULT_MAPPING, generate_profiles, write_plain_segment


def test_plain_csv_single_file_and_folder(segments_container):
    single, folder = generate_profiles(9, seed=1), generate_profiles(25, seed=2)
    write_plain_segment(segments_container, "Newsletter", single)
    write_plain_segment(segments_container, "Churned", folder, files=3)

    newsletter = get_segment(segments_container, "Newsletter")
    churned = get_segment(segments_container, "Churned")

    assert (newsletter.layout, newsletter.source, len(newsletter.partitions)) == (LAYOUT_PLAIN, "Newsletter.csv", 1)
    assert (churned.layout, churned.source) == (LAYOUT_PLAIN, "Churned/")
    assert [p.blob for p in churned.partitions] == [f"Churned/part-{n:04d}.csv" for n in (1, 2, 3)]
    assert churned.columns == folder.columns and churned.format.header
    assert len(rows_of_segment(segments_container, newsletter)) == 9
    assert len(rows_of_segment(segments_container, churned)) == 25


def test_header_without_the_email_column(segments_container):
    segments_container.upload_blob("Vip.csv", b"CustomerId,FirstName,Mail\r\n1,Jane,jane@example.com\r\n")
    segment = get_segment(segments_container, "Vip")

    with pytest.raises(MappingError, match=r"segment 'Vip': no column for email -> 'PrimaryEmail', lastName"):
        bind(FieldMapping.from_dict(DEFAULT_MAPPING), segment.columns, segment.name)


def test_empty_plain_file(segments_container):
    segments_container.upload_blob("Vip.csv", b"")

    with pytest.raises(SegmentError, match=r"Vip.csv: is empty: expected a header row"):
        get_segment(segments_container, "Vip")


def test_file_that_is_not_utf8(segments_container):
    text = "Email,Name\r\njose@example.com,José\r\nzoe@example.com,Zoë\r\n"
    segments_container.upload_blob("Vip.csv", text.encode("latin-1"))

    with pytest.raises(SegmentError, match=r"Vip.csv: is not valid utf-8: 2 of the first 3 lines .*0xe9 on line 2"):
        get_segment(segments_container, "Vip")


def test_utf16_file(segments_container):
    segments_container.upload_blob("Vip.csv", "Email,Name\r\na@example.com,A\r\n".encode("utf-16"))

    with pytest.raises(SegmentError, match=r"Vip.csv: is not UTF-8 text \(it holds NUL bytes: UTF-16\?\)"):
        get_segment(segments_container, "Vip")


def test_plain_folder_with_a_different_header(segments_container):
    write_plain_segment(segments_container, "Churned", generate_profiles(4), files=2)
    segments_container.upload_blob("Churned/part-0003.csv", b"Email,Name\r\na@example.com,A\r\n")
    segment = get_segment(segments_container, "Churned")

    with pytest.raises(SegmentError, match=r"Churned/part-0003.csv: header row \['Email', 'Name'\] differs"):
        list(plan_chunks(segments_container, segment, 10))
