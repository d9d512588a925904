"""Segment sources against Azurite: CI exports (model.json + partitions), plain CSVs, bad inputs."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from shared.mapping import FieldMapping, MappingError, bind
from shared.segments import (
    LAYOUT_CI, LAYOUT_PLAIN, SegmentChangedError, SegmentError, SegmentNotFoundError, get_segment,
    list_segments, plan_chunks, read_chunk, resolve_location, segments_affected_by_blob,
)
from tools.sample_export import DEFAULT_MAPPING, generate_profiles, write_plain_segment

T1433 = datetime(2020, 8, 24, 14, 33, tzinfo=timezone.utc)
T1530 = datetime(2020, 8, 24, 15, 30, tzinfo=timezone.utc)
T1600 = datetime(2020, 8, 24, 16, 0, tzinfo=timezone.utc)
EXPORT = "CustomerInsights_0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011/BlobExport"


def rows_of_segment(container, segment, rows_per_chunk=7):
    return [row for chunk in plan_chunks(container, segment, rows_per_chunk) for row in read_chunk(container, chunk)]


def test_newest_folder_listed_in_model_json_is_current(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(20, seed=1)}, partitions=3, when=T1433)
    ci_export({"HighValue": generate_profiles(12, seed=2)}, partitions=2, when=T1530)

    segment = get_segment(segments_container, "HighValue")

    assert segment.layout == LAYOUT_CI
    assert segment.updated_at == T1530
    assert segment.source == f"{EXPORT}/model.json"
    assert [p.blob for p in segment.partitions] == [
        f"{EXPORT}/HighValue/2020/08/24/1530/HighValue_{n}.csv" for n in (1, 2)
    ]
    assert all(p.etag and p.size > 0 for p in segment.partitions)
    assert segment.columns[:4] == ("CustomerId", "FirstName", "LastName", "PrimaryEmail")
    assert segment.format.header is False
    assert len(rows_of_segment(segments_container, segment)) == 12


def test_folder_that_model_json_does_not_list_is_not_current(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(10, seed=1)}, when=T1530)
    ci_export({"HighValue": generate_profiles(99, seed=2)}, when=T1600, model_json=False)  # still being written

    segment = get_segment(segments_container, "highvalue")  # names match case-insensitively

    assert segment.updated_at == T1530
    assert all("/1530/" in p.blob for p in segment.partitions)


def test_many_partitions_are_read_in_order(segments_container, ci_export):
    profiles = generate_profiles(50, seed=5)
    ci_export({"Big": profiles}, partitions=12, when=T1433)

    segment = get_segment(segments_container, "Big")

    assert [p.blob.rsplit("_", 1)[1] for p in segment.partitions] == [f"{n}.csv" for n in range(1, 13)]
    emails = [row.fields[3] for row in rows_of_segment(segments_container, segment) if row.fields]
    expected = [profiles.fields(i)[3] for i in range(50) if profiles.expected(i).kind.value not in
                ("wrong_columns", "undecodable")]
    assert emails == expected


@pytest.mark.parametrize("base", [
    "https://contoso.blob.core.windows.net/{container}",
    "https://contoso.dfs.core.windows.net/{container}",
    "http://127.0.0.1:10000/devstoreaccount1/{container}",
    "https://contoso.blob.core.windows.net/copied-from-elsewhere",  # found by its export folder
])
def test_partition_locations_resolve_whatever_the_host(segments_container, ci_export, base):
    ci_export({"Vip": generate_profiles(6)}, location_base=base.format(container=segments_container.container_name),
              when=T1433)

    segment = get_segment(segments_container, "Vip")

    assert segment.partitions[0].blob == f"{EXPORT}/Vip/2020/08/24/1433/Vip_1.csv"


def test_location_resolution_rules():
    model = f"{EXPORT}/model.json"
    assert resolve_location("https://a.blob.core.windows.net/segs/x/My%20File.csv", model, "segs") == "x/My File.csv"
    assert resolve_location("http://azurite:10000/devstoreaccount1/segs/y.csv", model, "segs") == "y.csv"
    with pytest.raises(SegmentError, match="not in container 'segs'"):
        resolve_location("https://a.blob.core.windows.net/other/y.csv", model, "segs")


@pytest.mark.parametrize("tail", [
    "HighValue/../../../other/x.csv", "HighValue/%2e%2e/%2E%2E/x.csv", "HighValue/%2E./x.csv", "HighValue/.%2e/x.csv",
    "HighValue/./x.csv", "HighValue/%2e/x.csv", "HighValue/..%2fx.csv", "HighValue/..%5Cx.csv",
])
def test_a_location_with_dot_segments_is_refused(tail):
    model = f"{EXPORT}/model.json"
    for base in ("https://a.blob.core.windows.net/segs/" + EXPORT, "http://127.0.0.1:10000/devstoreaccount1/segs", ""):
        location = f"{base}/{tail}" if base else tail
        with pytest.raises(SegmentError, match=r"has a '\.' or '\.\.' path segment"):
            resolve_location(location, model, "segs")
    assert resolve_location(f"https://a.blob.core.windows.net/segs/x/..y/.z./a...csv", model, "segs") == "x/..y/.z./a...csv"


@pytest.mark.parametrize("up", ["../", "%2e%2e/", "%2E./"])
def test_a_model_json_pointing_at_another_container_names_the_entity(segments_container, ci_export, up):
    ci_export({"HighValue": generate_profiles(3), "Lapsed": generate_profiles(3)}, when=T1433)
    model = json.loads(segments_container.download_blob(f"{EXPORT}/model.json").readall())
    folder = f"{segments_container.url}/{EXPORT}/HighValue/2020/08/24/1433/"  # 7 folders below the container
    location = folder + up * 8 + "other-container/HighValue_1.csv?sig=secret"
    model["entities"][0]["partitions"][0]["location"] = location
    segments_container.upload_blob(f"{EXPORT}/model.json", json.dumps(model), overwrite=True)

    with pytest.raises(SegmentError) as caught:
        get_segment(segments_container, "HighValue")

    message = str(caught.value)
    assert message.startswith(f"{EXPORT}/model.json, entity 'HighValue': partition location ")
    assert "has a '.' or '..' path segment" in message and "secret" not in message
    assert get_segment(segments_container, "Lapsed").name == "Lapsed"


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


def test_list_segments_lists_every_layout_and_reports_broken_exports(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(5), "Lapsed": generate_profiles(4, seed=9)}, when=T1433)
    write_plain_segment(segments_container, "Newsletter", generate_profiles(3))
    segments_container.upload_blob("README.txt", b"not a segment")
    segments_container.upload_blob("CustomerInsights_broken/BlobExport/model.json", b"{not json")

    errors: list[SegmentError] = []
    listed = list_segments(segments_container, errors=errors)

    assert [(s.name, s.layout) for s in listed] == [
        ("HighValue", LAYOUT_CI), ("Lapsed", LAYOUT_CI), ("Newsletter", LAYOUT_PLAIN)]
    assert listed[0].updated_at == T1433
    assert len(errors) == 1 and "CustomerInsights_broken/BlobExport/model.json is not valid JSON" in str(errors[0])
    with pytest.raises(SegmentError, match="is not valid JSON"):
        list_segments(segments_container)
    assert get_segment(segments_container, "Lapsed").name == "Lapsed"  # another export's breakage is not fatal


def test_segments_affected_by_blob(segments_container, ci_export):
    blobs = ci_export({"HighValue": generate_profiles(3), "Lapsed": generate_profiles(3)}, when=T1433)

    assert segments_affected_by_blob(segments_container, f"{EXPORT}/model.json") == ["HighValue", "Lapsed"]
    assert segments_affected_by_blob(segments_container, blobs[0]) == []  # a partition: wait for model.json
    assert segments_affected_by_blob(segments_container, "Newsletter.csv") == ["Newsletter"]
    assert segments_affected_by_blob(segments_container, "Churned/part-0001.csv") == ["Churned"]
    assert segments_affected_by_blob(segments_container, "notes.txt") == []


# ------------------------------------------------------------------ bad inputs, each with its message


def test_unknown_segment(segments_container):
    with pytest.raises(SegmentNotFoundError, match=r"segment 'Nope' not found in container .*Nope\.csv"):
        get_segment(segments_container, "Nope")


def test_partitions_without_a_model_json_entity(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(3)}, when=T1433)
    ci_export({"Fresh": generate_profiles(3)}, when=T1530, model_json=False)  # model.json still lists HighValue

    with pytest.raises(SegmentNotFoundError) as caught:
        get_segment(segments_container, "Fresh")

    message = str(caught.value)
    assert f"{EXPORT}/model.json has no entity 'Fresh' (it lists: HighValue)" in message
    assert f"partitions exist under {EXPORT}/Fresh/" in message


def test_partitions_without_any_model_json(segments_container, ci_export):
    ci_export({"Fresh": generate_profiles(3)}, when=T1530, model_json=False)

    with pytest.raises(SegmentNotFoundError, match=rf"partitions exist under {EXPORT}/Fresh/ but {EXPORT}/model.json is missing"):
        get_segment(segments_container, "Fresh")


def test_partition_listed_but_absent(segments_container, ci_export):
    blobs = ci_export({"HighValue": generate_profiles(9)}, partitions=3, when=T1433)
    segments_container.delete_blob(blobs[1])

    with pytest.raises(SegmentError, match=rf"entity 'HighValue'.*listed in model.json but absent.*{blobs[1]}"):
        get_segment(segments_container, "HighValue")


def test_model_json_entity_without_attributes(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(3)}, when=T1433)
    model = json.loads(segments_container.download_blob(f"{EXPORT}/model.json").readall())
    del model["entities"][0]["attributes"]
    segments_container.upload_blob(f"{EXPORT}/model.json", json.dumps(model), overwrite=True)

    with pytest.raises(SegmentError, match=rf"{EXPORT}/model.json, entity 'HighValue': entity has no attributes"):
        get_segment(segments_container, "HighValue")


def test_header_without_the_email_column(segments_container):
    segments_container.upload_blob("Vip.csv", b"CustomerId,FirstName,Mail\r\n1,Jane,jane@example.com\r\n")
    segment = get_segment(segments_container, "Vip")

    with pytest.raises(MappingError, match=r"segment 'Vip': no column for email -> 'PrimaryEmail', lastName"):
        bind(FieldMapping.from_dict(DEFAULT_MAPPING), segment.columns, segment.name)


def test_empty_plain_file(segments_container):
    segments_container.upload_blob("Vip.csv", b"")

    with pytest.raises(SegmentError, match=r"Vip.csv: is empty: expected a header row"):
        get_segment(segments_container, "Vip")


def test_export_whose_partitions_are_all_empty(segments_container, ci_export):
    ci_export({"HighValue": generate_profiles(0)}, partitions=2, when=T1433)
    segment = get_segment(segments_container, "HighValue")

    with pytest.raises(SegmentError, match=r"segment 'HighValue': every partition is empty \(0 bytes"):
        list(plan_chunks(segments_container, segment, 10))


def test_file_that_is_not_utf8(segments_container):
    text = "Email,Name\r\njose@example.com,José\r\nzoe@example.com,Zoë\r\n"
    segments_container.upload_blob("Vip.csv", text.encode("latin-1"))

    with pytest.raises(SegmentError, match=r"Vip.csv: is not valid utf-8: 2 of the first 3 lines .*0xe9 on line 2"):
        get_segment(segments_container, "Vip")


def test_ci_partition_that_is_not_utf8(segments_container, ci_export):
    blobs = ci_export({"HighValue": generate_profiles(3)}, partitions=1, when=T1433)
    segment = get_segment(segments_container, "HighValue")
    segments_container.upload_blob(blobs[0], "1,José,a@example.com\r\n".encode("cp1252"), overwrite=True)
    segment = get_segment(segments_container, "HighValue")

    with pytest.raises(SegmentError, match=rf"{blobs[0]}: is not valid UTF-8: 1 of the first 1 lines"):
        list(plan_chunks(segments_container, segment, 10))


def test_utf16_file(segments_container):
    segments_container.upload_blob("Vip.csv", "Email,Name\r\na@example.com,A\r\n".encode("utf-16"))

    with pytest.raises(SegmentError, match=r"Vip.csv: is not UTF-8 text \(it holds NUL bytes: UTF-16\?\)"):
        get_segment(segments_container, "Vip")


def test_ten_megabyte_single_line(segments_container):
    data = b"Email,Name\r\na@example.com,A\r\nb@example.com," + b"x" * (10 * 1024 * 1024) + b"\r\n"
    segments_container.upload_blob("Vip.csv", data)
    segment = get_segment(segments_container, "Vip")

    with pytest.raises(SegmentError, match=r"Vip.csv: row 2 \(starting at byte 29\) is longer than 1024 KiB"):
        list(plan_chunks(segments_container, segment, 10))


def test_plain_folder_with_a_different_header(segments_container):
    write_plain_segment(segments_container, "Churned", generate_profiles(4), files=2)
    segments_container.upload_blob("Churned/part-0003.csv", b"Email,Name\r\na@example.com,A\r\n")
    segment = get_segment(segments_container, "Churned")

    with pytest.raises(SegmentError, match=r"Churned/part-0003.csv: header row \['Email', 'Name'\] differs"):
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
