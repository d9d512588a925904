"""Deleting an export through the API: what is kept for it goes with it, and with removeTags=true a run
first takes every tag it owns off Omnisend's contacts (a same-named tag set by hand elsewhere stays)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared import schedule, storage, sync
from tests.api.conftest import export_body

SEGMENTS = ("Vip", "Newsletter")
STRANGER = "marketer.pick@example.org"  # a contact the export never sent


@pytest.fixture()
def exported(api, api_settings, api_connection, segments_container, omnisend_key, sandbox, finish_run):
    """An export of two overlapping segments (300 people each, 200 in both) that ran once and tagged its contacts,
    and a marketer's hand-made `Vip` tag on a contact the export never sent: {"export", "emails", "state"}."""
    from tools.sample_export import generate_profiles, overlapping_segments, write_plain_segment

    population = generate_profiles(400, seed=5, bad_share=0.0, duplicate_share=0.0)
    segments = overlapping_segments(SEGMENTS, population, share=0.75)  # Vip: rows 0-299, Newsletter: 100-399
    for name, rows in segments.items():
        write_plain_segment(segments_container, name, rows)
    connection = api_connection(api_key=omnisend_key, requests_per_minute=50_000, tag_requests_per_minute=50_000)
    export = api("POST", "exports", json_body=export_body(connection.id, list(SEGMENTS), runOn=[])).json()
    run = finish_run(api("POST", f"exports/{export['id']}/runs").json()["runId"])
    assert run["status"] == "succeeded"
    sandbox.tag_by_hand(STRANGER, add=["Vip", "HighValue"])
    emails = {name: [rows.expected(i).email for i in range(rows.count)] for name, rows in segments.items()}
    assert all(sandbox.tags_of(email) == ["Vip"] for email in emails["Vip"][:100])
    state = sync.SyncStateStore(storage.container(api_settings, api_settings.state_container))
    assert state.load(export["id"]) is not None
    return {"export": export, "emails": emails, "state": state}


def test_a_plain_delete_takes_the_sync_state_and_schedule_claims_and_leaves_omnisend(api, api_settings, exported,
                                                                                   sandbox):
    export_id = exported["export"]["id"]
    container = storage.container(api_settings, api_settings.state_container)
    assert schedule.claim_due_run(container, export_id, datetime(2026, 4, 1, 2, tzinfo=timezone.utc))
    runs = api("GET", f"exports/{export_id}/runs").json()["runs"]
    tags_before = sandbox.all_tags()

    assert api("DELETE", f"exports/{export_id}", query={"removeTags": "false"}).status == 204

    assert exported["state"].load(export_id) is None
    assert [item.name for item in container.list_blobs(name_starts_with=f"schedule/claims/{export_id}/")] == []
    assert [item.name for item in container.list_blobs(name_starts_with=f"run-index/{export_id}/")] == []
    assert api("GET", f"exports/{export_id}").status == 404
    assert api("GET", f"runs/{runs[0]['runId']}").status == 200  # runs stay readable
    assert sandbox.all_tags() == tags_before  # Omnisend as it was


def test_remove_tags_runs_then_deletes_the_export_and_its_state(api, exported, sandbox, finish_run,
                                                                exports_api_contract):
    export_id, emails = exported["export"]["id"], exported["emails"]
    own = emails["Vip"][0]
    sandbox.tag_by_hand(own, add=["Loyal"])  # the marketer's own tag on an exported contact
    contacts_before = set(sandbox.all_tags())
    log_start = len(sandbox.request_log())

    started = api("DELETE", f"exports/{export_id}", query={"removeTags": "true"})
    exports_api_contract.check(started, "DELETE", "/exports/{exportId}")
    assert started.status == 202
    run_id = started.json()["runId"]
    assert started.headers["Location"] == f"/api/runs/{run_id}"

    # While it runs, the export is neither run nor changed; asking again answers the same run.
    refused = api("POST", f"exports/{export_id}/runs")
    assert (refused.status, refused.json()["code"], refused.json()["runId"]) == (409, "run_in_progress", run_id)
    changed = api("PUT", f"exports/{export_id}", json_body=export_body(exported["export"]["connectionId"],
                                                                       list(SEGMENTS), runOn=[]))
    exports_api_contract.check(changed, "PUT", "/exports/{exportId}")
    assert (changed.status, changed.json()["code"], changed.json()["runId"]) == (409, "run_in_progress", run_id)
    again = api("DELETE", f"exports/{export_id}", query={"removeTags": "true"})
    assert (again.status, again.json()["runId"]) == (202, run_id)

    run = finish_run(run_id)
    assert (run["trigger"], run["status"], run["progress"]) == ("delete", "succeeded", 1.0)
    assert run["untagged"] == len(emails["Vip"]) + len(emails["Newsletter"])  # one removal per (contact, tag)
    assert run["counts"]["rows"] == 0
    exports_api_contract.check(api("GET", f"runs/{run_id}"), "GET", "/runs/{runId}")  # the run stays readable

    tags = sandbox.all_tags()
    assert set(tags) == contacts_before  # contacts stay in Omnisend
    assert all(tags[email] == [] for email in set(emails["Vip"] + emails["Newsletter"]) - {own})
    assert tags[own] == ["Loyal"]
    assert tags[STRANGER] == ["HighValue", "Vip"]  # the same-named tag made by hand stays
    removals = [record for record in sandbox.request_log()[log_start:] if record.path == "/contacts/tags"]
    assert {record.method for record in removals} == {"DELETE"}
    assert sorted(len(record.body["emails"]) for record in removals) == [50, 50, 250, 250]  # by email, 250 a call

    assert api("GET", f"exports/{export_id}").status == 404
    assert exported["state"].load(export_id) is None


def test_a_failed_tag_removal_keeps_the_export_to_try_again(api, exported, sandbox, omnisend_key, finish_run):
    export_id = exported["export"]["id"]
    sandbox.add_key("brand1", retired=True, key=omnisend_key)  # the connection's key, revoked meanwhile

    failed = finish_run(api("DELETE", f"exports/{export_id}", query={"removeTags": "true"}).json()["runId"])
    assert failed["status"] == "failed" and "API key" in failed["error"]
    assert api("GET", f"exports/{export_id}").status == 200
    assert exported["state"].load(export_id) is not None
    assert sandbox.tags_of(exported["emails"]["Vip"][0]) == ["Vip"]

    sandbox.add_key("brand1", key=omnisend_key)  # valid again
    retried = finish_run(api("DELETE", f"exports/{export_id}", query={"removeTags": "true"}).json()["runId"])
    assert retried["status"] == "succeeded"
    assert api("GET", f"exports/{export_id}").status == 404
    assert sandbox.tags_of(exported["emails"]["Vip"][0]) == []


def test_remove_tags_waits_for_a_run_in_progress_and_must_be_true_or_false(api, api_connection, api_segments,
                                                                           exports_api_contract):
    export = api("POST", "exports", json_body=export_body(api_connection().id, runOn=[])).json()
    bad = api("DELETE", f"exports/{export['id']}", query={"removeTags": "yes"})
    exports_api_contract.check(bad, "DELETE", "/exports/{exportId}")
    assert (bad.status, bad.json()["code"], bad.json()["errors"][0]["field"]) == (400, "validation_failed",
                                                                                  "removeTags")
    running = api("POST", f"exports/{export['id']}/runs").json()["runId"]
    busy = api("DELETE", f"exports/{export['id']}", query={"removeTags": "true"})
    exports_api_contract.check(busy, "DELETE", "/exports/{exportId}")
    assert (busy.status, busy.json()["code"], busy.json()["runId"]) == (409, "run_in_progress", running)
    assert api("GET", f"exports/{export['id']}").status == 200


def test_who_may_delete_the_export_may_remove_its_tags(api, api_connection, api_segments):
    export = api("POST", "exports", json_body=export_body(api_connection("admins").id, runOn=[])).json()
    refused = api("DELETE", f"exports/{export['id']}", role="contributor", query={"removeTags": "true"})
    assert refused.status == 403
    assert api("GET", f"exports/{export['id']}/runs").json() == {"runs": []}
