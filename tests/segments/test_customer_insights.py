"""The Customer Insights layout against Azurite: model.json, partition folders and locations."""
from __future__ import annotations

import json

import pytest

from shared.segments import LAYOUT_CI, SegmentError, get_segment, plan_chunks, resolve_location
from tests.segments import EXPORT, T1433, T1530, T1600, rows_of_segment
from tools.sample_export import generate_profiles


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


def test_ci_partition_that_is_not_utf8(segments_container, ci_export):
    blobs = ci_export({"HighValue": generate_profiles(3)}, partitions=1, when=T1433)
    segment = get_segment(segments_container, "HighValue")
    segments_container.upload_blob(blobs[0], "1,José,a@example.com\r\n".encode("cp1252"), overwrite=True)
    segment = get_segment(segments_container, "HighValue")

    with pytest.raises(SegmentError, match=rf"{blobs[0]}: is not valid UTF-8: 1 of the first 1 lines"):
        list(plan_chunks(segments_container, segment, 10))
