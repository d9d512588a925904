"""The lock on a connection's exports: two saves claiming one tag at the same moment store one export."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from shared import blobstate
from shared.api import connectionlock
from shared.storage import container
from tests.api.conftest import export_body

NOW = datetime(2026, 4, 1, 9, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("document, held", [
    ({"owner": "a", "until": "2026-04-01T09:30:01.000Z"}, True),
    ({"owner": "a", "until": "2026-04-01T09:30:00.000Z"}, False),  # its time has passed: its holder died
    ({"owner": "a", "until": "not a time"}, False),
    ({"until": "2026-04-01T09:31:00.000Z"}, False),
    (None, False),  # a blob that is not JSON holds no one: it never blocks saves for good
    ([1], False),
])
def test_a_lock_holds_until_its_time_passes_and_an_unreadable_one_holds_no_one(document, held):
    assert connectionlock.held(document, NOW) is held


class MeetBeforeStoring:
    """A probe for each of two threads: a thread about to store an export waits (up to `timeout`) until
    the other is about to store one too. Without the lock both pass the tag check before either stores;
    with it, the second waits for the lock and the first stores once the wait is over."""

    def __init__(self, timeout: float = 3.0) -> None:
        self.barrier = threading.Barrier(2, timeout=timeout)

    def before(self, op: str, target: str) -> None:
        if op == "write" and "/exports/" in target:
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                pass

    def after(self, op: str, target: str) -> None:
        pass


def _at_once(api, requests: list[tuple]) -> list:
    """The answers of the API calls `(method, path, body)`, made by two threads at the same moment."""
    probe = MeetBeforeStoring()

    def call(request):
        method, path, body = request
        blobstate.install_probe(probe)
        try:
            return api(method, path, json_body=body)
        finally:
            blobstate.install_probe(None)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(call, requests))


def _one_stored_one_refused(answers, refused_tag: str) -> tuple:
    refused = next(answer for answer in answers if answer.status == 409).json()
    stored = next(answer for answer in answers if answer.status in (200, 201)).json()
    assert (refused["code"], refused["tag"], refused["exportId"]) == ("tag_in_use", refused_tag, stored["id"])
    return stored, refused


def test_two_exports_created_at_once_with_one_tag_store_one_and_refuse_the_other(api, api_settings, api_connection,
                                                                                  api_segments):
    connection = api_connection()
    body = export_body(connection.id, ["Vip"], tags={"Vip": "VIP"})
    answers = _at_once(api, [("POST", "exports", {**body, "displayName": "First"}),
                             ("POST", "exports", {**body, "displayName": "Second"})])

    assert sorted(answer.status for answer in answers) == [201, 409]
    stored, _ = _one_stored_one_refused(answers, "VIP")
    assert [item["id"] for item in api("GET", "exports").json()["exports"]] == [stored["id"]]
    state = container(api_settings, api_settings.state_container)
    assert blobstate.read(state, connectionlock.blob_name(connection.id)) is None  # released

    # Deleting the export that owns the tag releases it.
    assert api("DELETE", f"exports/{stored['id']}").status == 204
    assert api("POST", "exports", json_body=body).status == 201


def test_a_rename_and_a_create_at_once_claiming_one_tag_store_one(api, api_connection, api_segments):
    connection = api_connection()
    renamed = api("POST", "exports", json_body=export_body(connection.id, ["Newsletter"], displayName="News")).json()
    answers = _at_once(api, [
        ("PUT", f"exports/{renamed['id']}", export_body(connection.id, ["Newsletter"], displayName="News",
                                                        tags={"Newsletter": "VIP"})),
        ("POST", "exports", export_body(connection.id, ["Vip"], tags={"Vip": "VIP"})),
    ])

    assert sorted(answer.status for answer in answers) in ([200, 409], [201, 409])
    stored, _ = _one_stored_one_refused(answers, "VIP")
    owners = [item for item in api("GET", "exports").json()["exports"] if item["tags"] == {"Vip": "VIP"}
              or item["tags"] == {"Newsletter": "VIP"}]
    assert [item["id"] for item in owners] == [stored["id"]]


def test_a_lock_left_by_a_save_that_died_is_taken_over_once_its_time_has_passed(api, api_settings, api_connection,
                                                                                 api_segments):
    connection = api_connection()
    state = container(api_settings, api_settings.state_container)
    passed = blobstate.utc_text(datetime.now(timezone.utc) - timedelta(seconds=1))
    blobstate.write_json(state, connectionlock.blob_name(connection.id), {"owner": "dead", "until": passed})

    assert api("POST", "exports", json_body=export_body(connection.id)).status == 201
    assert blobstate.read(state, connectionlock.blob_name(connection.id)) is None


def test_a_save_that_cannot_have_the_lock_in_time_is_an_edit_conflict_and_stores_nothing(
        api, api_settings, api_connection, api_segments, monkeypatch, exports_api_contract):
    monkeypatch.setattr(connectionlock, "WAIT_SECONDS", 0.3)
    connection = api_connection()
    state = container(api_settings, api_settings.state_container)
    later = blobstate.utc_text(datetime.now(timezone.utc) + timedelta(minutes=1))
    blobstate.write_json(state, connectionlock.blob_name(connection.id), {"owner": "busy", "until": later})

    busy = api("POST", "exports", json_body=export_body(connection.id))
    exports_api_contract.check(busy, "POST", "/exports")
    assert (busy.status, busy.json()["code"]) == (409, "edit_conflict")
    assert "being saved" in busy.json()["detail"] and "retry" in busy.json()["detail"]
    untagged = api("POST", "exports", json_body=export_body(connection.id, tagContacts=False))
    assert untagged.status == 201  # an export that tags nothing takes no lock
    assert [item["id"] for item in api("GET", "exports").json()["exports"]] == [untagged.json()["id"]]


def test_a_hold_whose_time_passed_gives_up_storing_and_its_release_leaves_the_lock_of_the_save_that_took_it_over(
        api_settings, api_connection):
    connection = api_connection()
    state = container(api_settings, api_settings.state_container)
    name = connectionlock.blob_name(connection.id)
    now = [datetime.now(timezone.utc)]
    first = connectionlock.locked(state, connection.id, clock=lambda: now[0])
    hold = first.__enter__()
    hold.check()  # in time
    now[0] += timedelta(seconds=connectionlock.HOLD_SECONDS)
    with pytest.raises(connectionlock.ConnectionBusyError, match="took longer than its hold"):
        hold.check()

    second = connectionlock.locked(state, connection.id, clock=lambda: now[0], wait_seconds=0)
    second.__enter__()  # takes it over at once
    first.__exit__(None, None, None)
    assert blobstate.read(state, name) is not None  # still the second save's
    second.__exit__(None, None, None)
    assert blobstate.read(state, name) is None
