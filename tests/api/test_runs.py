"""Runs through the API: start, list, read, cancel, rejects."""
from __future__ import annotations

from tests.api.conftest import export_body


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
