"""State blobs in Azurite: one contract for conditional writes, the timestamp format, the probe."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from shared import blobstate
from shared.storage import container


@pytest.fixture()
def state(settings):
    client = container(settings, settings.state_container)
    blobstate.ensure_container(client)
    blobstate.ensure_container(client)  # a second time changes nothing
    return client


def test_a_create_only_write_conflicts_when_the_blob_exists(state):
    etag = blobstate.write_json(state, "a.json", {"n": 1}, create_only=True)
    with pytest.raises(blobstate.ConflictError, match="'a.json' exists already") as conflict:
        blobstate.write_json(state, "a.json", {"n": 2}, create_only=True)
    assert conflict.value.reason == "exists"
    assert blobstate.read_json(state, "a.json") == ({"n": 1}, etag)


def test_an_if_match_write_conflicts_when_the_blob_changed_or_vanished(state):
    first = blobstate.write_json(state, "a.json", {"n": 1})
    second = blobstate.write_json(state, "a.json", {"n": 2}, if_match=first)
    with pytest.raises(blobstate.ConflictError) as changed:
        blobstate.write_json(state, "a.json", {"n": 3}, if_match=first)
    assert changed.value.reason == "changed"
    assert blobstate.delete(state, "a.json", if_match=second) is True
    with pytest.raises(blobstate.ConflictError):  # 412 from the service (a 404 would say "missing")
        blobstate.write_json(state, "a.json", {"n": 4}, if_match=second)
    assert blobstate.delete(state, "a.json") is False and blobstate.read(state, "a.json") is None


def test_a_delete_of_a_changed_blob_conflicts(state):
    first = blobstate.write(state, "b.bin", b"1")
    blobstate.write(state, "b.bin", b"2")
    with pytest.raises(blobstate.ConflictError):
        blobstate.delete(state, "b.bin", if_match=first)


def test_a_blob_that_is_not_json_names_itself(state):
    blobstate.write(state, "broken.json", b"{")
    with pytest.raises(blobstate.CorruptStateError, match="'broken.json' is not valid JSON"):
        blobstate.read_json(state, "broken.json")


def test_listing_gives_names_times_and_metadata(state):
    blobstate.write(state, "x/1", b"", metadata={"rejects": "ab"})
    blobstate.write(state, "x/2", b"")
    listed = blobstate.list_blobs(state, "x/", metadata=True)
    assert [(i.name, i.metadata) for i in listed] == [("x/1", {"rejects": "ab"}), ("x/2", {})]
    assert all(isinstance(i.last_modified, datetime) for i in listed)
    assert b"".join(blobstate.stream(state, "x/1")) == b"" and blobstate.stream(state, "x/3") is None


def test_one_timestamp_format_for_the_whole_app():
    now = blobstate.utc_now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    assert blobstate.utc_text(blobstate.parse_utc(now)) == now
    assert blobstate.parse_utc("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_probe_sees_every_call_and_can_fail_one(state):
    seen = []

    class Probe:
        def before(self, op, target):
            seen.append((op, target))
            if op == "delete":
                raise ConnectionError("injected")

        def after(self, op, target):
            seen.append(("done", op))

    blobstate.install_probe(Probe())
    try:
        blobstate.write(state, "p", b"1")
        with pytest.raises(ConnectionError):
            blobstate.delete(state, "p")
    finally:
        blobstate.install_probe(None)
    name = state.container_name
    assert seen == [("write", f"{name}/p"), ("done", "write"), ("delete", f"{name}/p")]
    assert blobstate.read(state, "p").data == b"1"
