"""Runs through the API: start, list, read, cancel, rejects."""
from __future__ import annotations

import pytest

from tests.api.conftest import export_body
from tests.conftest import API_IDENTITIES


def test_runs_start_list_read_cancel_and_refuse_a_second_run(api, api_connection, api_segments,
                                                             exports_api_contract):
    export = api("POST", "exports", json_body=export_body(api_connection().id, runOn=[])).json()

    started = api("POST", f"exports/{export['id']}/runs")
    exports_api_contract.check(started, "POST", "/exports/{exportId}/runs")
    assert started.status == 202
    run_id = started.json()["runId"]
    assert started.json() == {"runId": run_id, "status": "queued"}
    assert started.headers["Location"] == f"/api/runs/{run_id}"

    again = api("POST", f"exports/{export['id']}/runs", role="admin")
    assert (again.status, again.json()["code"], again.json()["runId"]) == (409, "run_in_progress", run_id)

    run = api("GET", started.headers["Location"])
    exports_api_contract.check(run, "GET", "/runs/{runId}")
    assert (run.json()["exportId"], run.json()["trigger"]) == (export["id"], "manual")

    cancelled = api("POST", f"runs/{run_id}/cancel")
    exports_api_contract.check(cancelled, "POST", "/runs/{runId}/cancel")
    assert cancelled.json()["status"] == "cancelled"

    second = api("POST", f"exports/{export['id']}/runs").json()["runId"]
    listed = api("GET", f"exports/{export['id']}/runs")
    exports_api_contract.check(listed, "GET", "/exports/{exportId}/runs")
    assert [item["runId"] for item in listed.json()["runs"]] == [second, run_id]
    assert [item["runId"] for item in api("GET", f"exports/{export['id']}/runs",
                                          query={"limit": "1"}).json()["runs"]] == [second]
    assert api("GET", f"exports/{export['id']}/runs", query={"limit": "0"}).status == 400

    rejects = api("GET", f"runs/{run_id}/rejects")
    assert rejects.status == 200 and rejects.headers["Content-Type"].startswith("text/csv")
    assert rejects.body.splitlines()[0]  # a header row, even with no rejects


def test_deleting_an_export_cancels_its_run(api, api_connection, api_segments):
    export = api("POST", "exports", json_body=export_body(api_connection().id)).json()
    run_id = api("POST", f"exports/{export['id']}/runs").json()["runId"]
    assert api("DELETE", f"exports/{export['id']}").status == 204
    assert api("GET", f"runs/{run_id}").json()["status"] == "cancelled"
    assert api("GET", f"exports/{export['id']}").status == 404


# --- a run is judged by the connection it used ----------------------------------------------------


def test_moving_an_export_to_a_shared_connection_opens_its_new_runs_to_contributors_never_its_old_ones(
        api, api_connection, segments_container, omnisend_key, finish_run):
    from tools.sample_export import generate_profiles, write_plain_segment

    write_plain_segment(segments_container, "Vip", generate_profiles(20, seed=3, bad_share=0.5))
    fast = dict(api_key=omnisend_key, requests_per_minute=50_000, tag_requests_per_minute=50_000)
    private, shared = api_connection("admins", **fast), api_connection("adminsAndContributors", **fast)
    export = api("POST", "exports", json_body=export_body(private.id, runOn=[], tagContacts=False)).json()
    old_run = api("POST", f"exports/{export['id']}/runs").json()["runId"]
    assert finish_run(old_run)["counts"]["rejected"] > 0
    old_rows = api("GET", f"runs/{old_run}/rejects").body.splitlines()[1:]
    assert old_rows  # rejected rows, with their emails and reasons

    # An admin moves the export to a connection contributors may use; a contributor runs it.
    moved = api("PUT", f"exports/{export['id']}", json_body=export_body(shared.id, runOn=[], tagContacts=False))
    assert moved.status == 200
    assert api("GET", f"exports/{export['id']}", role="contributor").status == 200
    new_run = api("POST", f"exports/{export['id']}/runs", role="contributor").json()["runId"]
    assert api("GET", f"runs/{new_run}", role="contributor").status == 200
    assert api("GET", f"runs/{new_run}/rejects", role="contributor").status == 200

    # The old run used the admins-only connection: its rows, its summary and cancelling it stay admins'.
    for method, path in (("GET", f"runs/{old_run}"), ("GET", f"runs/{old_run}/rejects"),
                         ("POST", f"runs/{old_run}/cancel")):
        refused = api(method, path, role="contributor")
        assert (refused.status, refused.json()["code"]) == (403, "connection_not_usable"), path
        assert not any(row in refused.body for row in old_rows)
    listed = api("GET", f"exports/{export['id']}/runs", role="contributor").json()["runs"]
    assert [run["runId"] for run in listed] == [new_run]
    assert api("GET", f"runs/{old_run}/rejects").body.splitlines()[1:] == old_rows  # admins still read them
    assert [run["runId"] for run in api("GET", f"exports/{export['id']}/runs").json()["runs"]] == [new_run, old_run]


def test_a_run_whose_connection_was_deleted_is_for_admins_only(api, api_connection, api_segments):
    connection = api_connection("adminsAndContributors")
    export = api("POST", "exports", json_body=export_body(connection.id, runOn=[])).json()
    run_id = api("POST", f"exports/{export['id']}/runs").json()["runId"]
    assert api("POST", f"runs/{run_id}/cancel").status == 200
    assert api("DELETE", f"exports/{export['id']}").status == 204
    assert api("DELETE", f"connections/{connection.id}").status == 204
    refused = api("GET", f"runs/{run_id}", role="contributor")
    assert (refused.status, refused.json()["code"]) == (403, "forbidden")
    assert api("GET", f"runs/{run_id}").status == 200


# --- what contributors read of a run's error ------------------------------------------------------


def test_contributors_read_a_run_error_without_the_secret_name_or_where_it_is_kept(
        api, api_settings, api_connection, api_segments, finish_run, exports_api_contract):
    from shared.keystore import secret_store

    connection = api_connection("adminsAndContributors")
    secret_store(api_settings).delete(connection.secret_name)  # the planner cannot read the key
    export = api("POST", "exports", json_body=export_body(connection.id, runOn=[])).json()
    run_id = api("POST", f"exports/{export['id']}/runs", role="contributor").json()["runId"]
    assert finish_run(run_id)["status"] == "failed"

    admin_error = api("GET", f"runs/{run_id}").json()["error"]
    assert connection.secret_name in admin_error and api_settings.local_secrets_dir in admin_error
    for response in (api("GET", f"runs/{run_id}", role="contributor"),
                     api("GET", f"exports/{export['id']}/runs", role="contributor")):
        exports_api_contract.check(response, "GET", "/runs/{runId}" if "runs" not in response.json()
                                   else "/exports/{exportId}/runs")
        error = (response.json()["runs"][0] if "runs" in response.json() else response.json())["error"]
        assert "could not be read" in error and connection.display_name in error  # still says what went wrong
        assert connection.secret_name not in error and "omnisend-key-" not in error
        assert api_settings.local_secrets_dir not in error and "/secrets" not in error


@pytest.mark.parametrize("error, redacted", [
    ("the API key of connection 'Shop' could not be read: could not read secret 'omnisend-key-0b7d-11' in "
     "https://kv-prod.vault.azure.net: HttpResponseError: HTTP 403, Forbidden",
     "the API key of connection 'Shop' could not be read: could not read secret '<secret>' in <url>: "
     "HttpResponseError: HTTP 403, Forbidden"),
    ("could not read secret 'omnisend-key-x' in https://kv.vault.azure.net/: ServiceRequestError: "
     "Failed to resolve 'kv.vault.azure.net' ([Errno -2] Name or service not known)",
     "could not read secret '<secret>' in <url>: ServiceRequestError: "
     "Failed to resolve '<host>' ([Errno -2] Name or service not known)"),
    ("segment 'Vip': partition http://127.0.0.1:10000/devstoreaccount1/segments/Vip.csv changed",
     "segment 'Vip': partition <url> changed"),
    ("secret 'omnisend-key-abc' does not exist in /home/ops/.omnisend-export/secrets",
     "secret '<secret>' does not exist in <path>"),
    ("run 20260401T083000-5f2c of this export is still in progress; 3/10 rows", None),  # nothing to hide
])
def test_redact_error_drops_urls_hosts_paths_and_secret_names(error, redacted):
    from shared.api.runs import redact_error

    assert redact_error(error) == (redacted or error)


# --- the removal gate: held tag removals and their approval ---------------------------------------


def test_held_tag_removals_reach_omnisend_only_after_someone_approves_them(
        api, api_connection, segments_container, omnisend_key, sandbox, finish_run, finish_approval,
        exports_api_contract):
    from tools.sample_export import ProfileSlice, generate_profiles, write_plain_segment

    population = generate_profiles(60, seed=4, bad_share=0.0, duplicate_share=0.0)
    emails = [population.expected(i).email for i in range(60)]
    tagged = lambda: {email for email, contact in sandbox.contacts().items() if "Vip" in contact["tags"]}  # noqa: E731
    shared = api_connection("adminsAndContributors", api_key=omnisend_key, requests_per_minute=50_000,
                            tag_requests_per_minute=50_000)
    write_plain_segment(segments_container, "Vip", ProfileSlice(population, 0, 40))
    export = api("POST", "exports", json_body=export_body(shared.id, runOn=[])).json()
    assert export["maxRemovalPercent"] == 20

    def run_with(first: int, last: int) -> dict:
        write_plain_segment(segments_container, "Vip", ProfileSlice(population, first, last - first))
        return finish_run(api("POST", f"exports/{export['id']}/runs", role="contributor").json()["runId"])

    def approve(run_id: str, role: str = "contributor"):
        answer = api("POST", f"runs/{run_id}/approve-removals", role=role)
        exports_api_contract.check(answer, "POST", "/runs/{runId}/approve-removals")
        return answer

    first = run_with(0, 40)
    assert (approve(first["runId"]).status, approve(first["runId"]).json()["code"]) == (409, "no_removals_held")

    held = run_with(20, 60)  # 20 of the 60 contacts carrying the tag once the run tagged its segment left: 33.3%
    view = api("GET", f"runs/{held['runId']}", role="contributor")
    exports_api_contract.check(view, "GET", "/runs/{runId}")
    assert view.json()["status"] == "partiallySucceeded"
    assert [(t["tag"], t["leavers"], t["members"], t["percent"]) for t in view.json()["removalsHeld"]["tags"]] == [
        ("Vip", 20, 40, 33.33)]
    assert tagged() == set(emails)  # the joiners got the tag; the leavers kept it

    busy = api("POST", f"exports/{export['id']}/runs").json()["runId"]  # queued, never delivered
    refused = approve(held["runId"])
    assert (refused.status, refused.json()["code"], refused.json()["runId"]) == (409, "run_in_progress", busy)
    assert "removalsApproved" not in api("GET", f"runs/{held['runId']}").json()  # the refusal withdrew it
    assert api("POST", f"runs/{busy}/cancel").status == 200  # cancelled before planning: the state stays

    approved = approve(held["runId"])
    assert approved.status == 202 and approved.headers["Location"] == f"/api/runs/{held['runId']}"
    assert approved.json()["removalsApproved"]["status"] == "applying"
    assert approved.json()["removalsApproved"]["by"] == API_IDENTITIES["contributor"]
    assert (approve(held["runId"]).json()["code"]) == "removals_already_approved"
    assert api("POST", f"exports/{export['id']}/runs").json()["code"] == "run_in_progress"  # the lock is held
    applied = finish_approval(held["runId"])
    assert applied["removalsApproved"]["status"] == "applied" and applied["removalsApproved"]["removed"] == 20
    assert tagged() == set(emails[20:])
    assert approve(held["runId"]).json()["code"] == "removals_already_approved"

    # A later run replaces the sync state: it decides its own removals, an older approval would be stale.
    older = run_with(40, 60)  # 20 of 40 leave: held again
    newer = run_with(40, 60)  # the same segment: decided again, held again
    assert older["removalsHeld"] and newer["removalsHeld"] and tagged() == set(emails[20:])
    assert approve(older["runId"]).json()["code"] == "sync_state_replaced"
    assert approve(newer["runId"], role="admin").status == 202
    assert finish_approval(newer["runId"])["removalsApproved"]["removed"] == 20
    assert tagged() == set(emails[40:])


def test_removals_are_approved_only_by_who_may_run_the_export(api, api_connection, segments_container, omnisend_key,
                                                              finish_run):
    from tools.sample_export import ProfileSlice, generate_profiles, write_plain_segment

    population = generate_profiles(20, seed=6, bad_share=0.0, duplicate_share=0.0)
    fast = dict(api_key=omnisend_key, requests_per_minute=50_000, tag_requests_per_minute=50_000)
    private, shared = api_connection("admins", **fast), api_connection("adminsAndContributors", **fast)
    write_plain_segment(segments_container, "Vip", ProfileSlice(population, 0, 20))
    export = api("POST", "exports", json_body=export_body(shared.id, runOn=[])).json()
    finish_run(api("POST", f"exports/{export['id']}/runs").json()["runId"])
    write_plain_segment(segments_container, "Vip", ProfileSlice(population, 0, 10))
    held = finish_run(api("POST", f"exports/{export['id']}/runs").json()["runId"])["runId"]

    # The run used a shared connection, but the export moved to an admins-only one: contributors may not run it.
    assert api("PUT", f"exports/{export['id']}", json_body=export_body(private.id, runOn=[])).status == 200
    assert api("GET", f"runs/{held}", role="contributor").status == 200
    refused = api("POST", f"runs/{held}/approve-removals", role="contributor")
    assert (refused.status, refused.json()["code"]) == (403, "connection_not_usable")
    assert api("POST", f"runs/{held}/approve-removals", role="admin").status == 202
