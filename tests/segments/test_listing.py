"""Which segments a container holds, why one is missing, and what a new blob changes."""
from __future__ import annotations

import pytest

from shared.segments import (
    LAYOUT_CI, LAYOUT_PLAIN, SegmentError, SegmentNotFoundError, get_segment, list_segments, segments_affected_by_blob,
)
from tests.segments import EXPORT, T1433, T1530
from tools.sample_export import generate_profiles, write_plain_segment


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
