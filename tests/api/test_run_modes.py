"""Run modes through the API: POST /exports/{id}/runs with {"mode": ...}, and a preview's report."""
from __future__ import annotations

import pytest

from tests.api.conftest import export_body


@pytest.fixture()
def fast_export(api, api_connection, omnisend_key):
    """fast_export(usable_by="admins") -> an export (API view) of the "Vip" segment on a connection with no
    rate limit in the way."""

    def make(usable_by: str = "admins") -> dict:
        connection = api_connection(usable_by, api_key=omnisend_key, requests_per_minute=50_000,
                                    tag_requests_per_minute=50_000)
        return api("POST", "exports", json_body=export_body(connection.id, runOn=[])).json()

    return make


def start(api, export: dict, role: str = "admin", **body):
    return api("POST", f"exports/{export['id']}/runs", role=role, json_body=body if body else None)


def writes(sandbox, since: int) -> list:
    return [r for r in sandbox.request_log()[since:] if r.method != "GET"]


@pytest.mark.parametrize("body, field, message", [
    ({"mode": "sideways"}, "mode", 'must be one of "incremental", "full", "preview", got "sideways"'),
    ({"mode": 1}, "mode", 'must be one of "incremental", "full", "preview", got a number'),
    ({"mode": "full", "dryRun": True}, "dryRun", "is not a known field"),
])
def test_a_bad_mode_is_refused_naming_the_field_and_starts_nothing(api, api_connection, api_segments,
                                                                   exports_api_contract, body, field, message):
    export = api("POST", "exports", json_body=export_body(api_connection().id, runOn=[])).json()

    refused = api("POST", f"exports/{export['id']}/runs", json_body=body)

    exports_api_contract.check(refused, "POST", "/exports/{exportId}/runs")
    assert (refused.status, refused.json()["code"]) == (400, "validation_failed")
    assert refused.json()["errors"] == [{"field": field, "message": message}]
    assert api("GET", f"exports/{export['id']}/runs").json()["runs"] == []


def test_a_body_that_is_not_a_json_object_is_refused(api, api_connection, api_segments, exports_api_contract):
    export = api("POST", "exports", json_body=export_body(api_connection().id, runOn=[])).json()
    for body, headers, code in ((b"[]", {"Content-Type": "application/json"}, "invalid_json"),
                                (b"mode=full", {"Content-Type": "application/x-www-form-urlencoded"},
                                 "unsupported_media_type")):
        refused = api("POST", f"exports/{export['id']}/runs", body=body, headers=headers)
        exports_api_contract.check(refused, "POST", "/exports/{exportId}/runs")
        assert refused.json()["code"] == code


def test_the_run_shows_the_mode_it_went_in(api, fast_export, api_segments, finish_run, exports_api_contract):
    export = fast_export()
    first = start(api, export)  # no body: the app decides; the first run of an export is full
    exports_api_contract.check(first, "POST", "/exports/{exportId}/runs")
    assert finish_run(first.json()["runId"])["mode"] == "full"
    second = start(api, export, mode=None).json()["runId"]  # null: the same
    assert finish_run(second)["mode"] == "incremental"

    asked = start(api, export, mode="full").json()["runId"]
    view = api("GET", f"runs/{asked}")
    exports_api_contract.check(view, "GET", "/runs/{runId}")
    assert view.json()["mode"] == "full"  # as asked, before it is planned
    assert finish_run(asked)["mode"] == "full"


def test_a_full_run_upserts_unchanged_rows_too(api, fast_export, api_segments, finish_run, sandbox):
    export = fast_export()
    first = finish_run(start(api, export).json()["runId"])
    before = len(sandbox.request_log())

    full = finish_run(start(api, export, mode="full").json()["runId"])

    upserts = [item for r in writes(sandbox, before) if r.path == "/batches" for item in r.body["items"]]
    assert full["mode"] == "full" and full["counts"]["sent"] == first["counts"]["sent"] > 0
    assert full["counts"]["unchanged"] == 0 and len(upserts) == first["counts"]["sent"]
    assert full["untagged"] == 0  # nobody left: no tag removed


def test_a_preview_writes_nothing_and_its_report_is_read_as_the_run(api, fast_export, api_segments, finish_run,
                                                                   sandbox, exports_api_contract):
    export = fast_export("adminsAndContributors")
    finish_run(start(api, export).json()["runId"])
    before = len(sandbox.request_log())

    started = start(api, export, role="contributor", mode="preview")
    run_id = started.json()["runId"]
    not_yet = api("GET", f"runs/{run_id}/preview")
    exports_api_contract.check(not_yet, "GET", "/runs/{runId}/preview")
    assert (not_yet.status, not_yet.json()["code"]) == (409, "preview_not_ready")
    view = finish_run(run_id)

    assert (view["status"], view["mode"]) == ("succeeded", "preview")
    assert view["counts"]["sent"] == 0 and writes(sandbox, before) == []
    report = api("GET", f"runs/{run_id}/preview", role="contributor")
    exports_api_contract.check(report, "GET", "/runs/{runId}/preview")
    body = report.json()
    assert (body["runId"], body["exportId"]) == (run_id, export["id"])
    valid = view["counts"]["rows"] - view["counts"]["rejected"]
    assert body["counts"] == {"new": 0, "changed": 0, "tagOnly": 0, "unchanged": valid}
    assert len(body["samples"]["unchanged"]) == valid and body["removalsHeld"] is False
    assert body["leavers"] == {}  # nobody left Vip
    assert api("GET", f"runs/{run_id}/rejects", role="contributor").status == 200  # what a run would reject


def test_only_a_preview_has_a_report_and_only_those_who_may_read_the_run_read_it(
        api, fast_export, api_segments, finish_run, exports_api_contract):
    export = fast_export()  # admins only
    run_id = start(api, export).json()["runId"]
    finish_run(run_id)
    missing = api("GET", f"runs/{run_id}/preview")
    exports_api_contract.check(missing, "GET", "/runs/{runId}/preview")
    assert (missing.status, missing.json()["code"]) == (404, "not_a_preview")

    preview = start(api, export, mode="preview").json()["runId"]
    finish_run(preview)
    assert api("GET", f"runs/{preview}/preview").status == 200
    refused = api("GET", f"runs/{preview}/preview", role="contributor")
    exports_api_contract.check(refused, "GET", "/runs/{runId}/preview")
    assert (refused.status, refused.json()["code"]) == (403, "connection_not_usable")
    assert api("GET", "runs/nothing-here/preview").json()["code"] == "run_not_found"
