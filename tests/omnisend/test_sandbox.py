"""The Omnisend sandbox behaves like Omnisend where this project depends on it (probed with raw HTTP)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from tools.omnisend_sandbox import ALL_SCOPES, OmnisendSandbox

ROOT = Path(__file__).resolve().parents[2]


def contact(email: str, **identifier_options) -> dict:
    return {"identifiers": [{"type": "email", "id": email, **identifier_options}]}


def wait_batch(sandbox_api, batch_id: str) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        batch = sandbox_api("GET", f"/batches/{batch_id}").json()
        if batch["status"] in ("finished", "stopped"):
            return batch
        time.sleep(0.02)
    raise AssertionError(f"batch {batch_id} did not finish")


@pytest.mark.parametrize(
    "headers_key, expected_status, detail_part",
    [(None, 401, "missing"), ("brand1-unknownsecret", 401, "invalid")],
)
def test_authentication_like_omnisend(sandbox_api, headers_key, expected_status, detail_part):
    answer = sandbox_api("GET", "/contacts", key=headers_key)
    assert answer.status_code == expected_status and detail_part in answer.json()["detail"]


def test_revoked_key_and_missing_scope(sandbox, sandbox_api):
    assert sandbox_api("GET", "/brands/current", key=sandbox.add_key(retired=True)).status_code == 401
    reader = sandbox.add_key(scopes=["contacts.read"])
    assert sandbox_api("GET", "/contacts", key=reader).status_code == 200
    forbidden = sandbox_api("POST", "/contacts", key=reader, json=contact("a@example.com"))
    assert forbidden.status_code == 403 and "contacts.write" in forbidden.json()["detail"]
    assert sandbox_api("GET", "/brands/current", key=reader).status_code == 403


def test_version_header_missing_is_400_and_retired_is_410(sandbox_api):
    missing = sandbox_api("GET", "/contacts", version=None)
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "Omnisend-Version"
    assert sandbox_api("GET", "/contacts", version="2024-01-01").status_code == 410
    assert sandbox_api("GET", "/contacts", version="v3").status_code == 400


def test_validation_lists_every_bad_field(sandbox_api):
    body = {"identifiers": [{"type": "fax", "id": "x@example.com"}, {"type": "email", "id": "nope"}],
            "gender": "x", "tags": ["t"] * 101, "birthdate": "1990-13-01", "firstName": 7}
    answer = sandbox_api("POST", "/contacts", json=body)
    assert answer.status_code == 400
    fields = {(e["field"], e["code"]) for e in answer.json()["errors"]}
    assert fields == {("identifiers.0.type", "invalid_enum"), ("identifiers.1.id", "invalid_format"),
                      ("gender", "invalid_enum"), ("tags", "too_many_items"), ("birthdate", "invalid_format"),
                      ("firstName", "invalid_type")}


@pytest.mark.parametrize("properties, expected", [
    ({"loyalty tier": "Gold"}, {("customProperties.loyalty tier", "invalid_name")}),
    ({"x" * 129: 1}, {(f"customProperties.{'x' * 129}", "invalid_name")}),
    ({"address_obj": {"city": "Vilnius"}}, {("customProperties.address_obj", "invalid_type")}),
    ({"stores": ["Vilnius", 3]}, {("customProperties.stores", "invalid_type")}),
    ({"nothing": None}, {("customProperties.nothing", "invalid_type")}),
    ({"note": "x" * 2049, "stores": ["y" * 2049]}, {("customProperties.note", "too_long"),
                                                    ("customProperties.stores", "too_long")}),
    ({f"p{i}": i for i in range(201)}, {("customProperties", "too_many_items")}),
])
def test_custom_properties_are_validated_as_omnisend_states(sandbox_api, properties, expected):
    answer = sandbox_api("POST", "/contacts", json={**contact("jane@example.com"), "customProperties": properties})
    assert answer.status_code == 400
    assert {(e["field"], e["code"]) for e in answer.json()["errors"]} == expected


def test_custom_properties_birthdate_and_gender_that_omnisend_takes_are_stored(sandbox, sandbox_api):
    properties = {"loyalty_tier": "Gold", "Lifetime_Value_2": 1234.5, "orders": 3, "vip": True,
                  "stores": ["Vilnius", "Kaunas"], "note": "x" * 2048, **{f"p{i}": i for i in range(194)}}
    body = {**contact("jane@example.com"), "customProperties": properties, "birthdate": "2000-02-29", "gender": "f"}
    assert sandbox_api("POST", "/contacts", json=body).status_code == 201
    stored = sandbox.contacts()["jane@example.com"]
    assert stored["customProperties"] == properties and (stored["birthdate"], stored["gender"]) == ("2000-02-29", "f")


@pytest.mark.parametrize("field, value, code", [
    ("birthdate", "2023-02-29", "invalid_format"), ("birthdate", "1990-5-1", "invalid_format"),
    ("birthdate", "05/01/1990", "invalid_format"), ("gender", "male", "invalid_enum"), ("gender", "M", "invalid_enum"),
])
def test_birthdate_and_gender_take_only_omnisend_formats(sandbox_api, field, value, code):
    answer = sandbox_api("POST", "/contacts", json={**contact("jane@example.com"), field: value})
    assert answer.status_code == 400 and [(e["field"], e["code"]) for e in answer.json()["errors"]] == [(field, code)]


def test_batch_of_101_items_is_rejected(sandbox, sandbox_api):
    answer = sandbox_api("POST", "/batches", json={"method": "POST", "endpoint": "contacts",
                                                   "items": [contact(f"u{i}@example.com") for i in range(101)]})
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "items"
    assert sandbox.batches() == {}


def test_emails_are_case_sensitive_and_upsert_answers_201_then_200(sandbox, sandbox_api):
    assert sandbox_api("POST", "/contacts", json=contact("Jane@x.com")).status_code == 201
    assert sandbox_api("POST", "/contacts", json=contact("jane@x.com")).status_code == 201
    assert sandbox_api("POST", "/contacts", json=contact("jane@x.com")).status_code == 200
    assert set(sandbox.contacts()) == {"Jane@x.com", "jane@x.com"}
    contact_id = sandbox.contacts()["Jane@x.com"]["id"]
    assert sandbox_api("GET", f"/contacts/{contact_id}").json()["email"] == "Jane@x.com"
    assert sandbox_api("GET", "/contacts/000000000000000000000000").status_code == 404


def test_welcome_messages_unless_explicitly_disabled(sandbox, sandbox_api):
    sandbox_api("POST", "/contacts", json=contact("default@example.com"))
    sandbox_api("POST", "/contacts", json=contact("yes@example.com", sendWelcomeMessage=True))
    sandbox_api("POST", "/contacts", json=contact("no@example.com", sendWelcomeMessage=False))
    sandbox_api("POST", "/contacts", json=contact("default@example.com"))  # an update sends nothing
    assert sandbox.welcome_messages == ["default@example.com", "yes@example.com"]


def test_older_status_change_does_not_override_newer(sandbox, sandbox_api):
    def status(value: str, at: str) -> dict:
        channels = {"email": {"status": value, "statusChangedAt": at}}
        return contact("s@example.com", channels=channels, sendWelcomeMessage=False)

    sandbox_api("POST", "/contacts", json=status("unsubscribed", "2026-02-01T00:00:00Z"))
    sandbox_api("POST", "/contacts", json=status("subscribed", "2026-01-01T00:00:00Z"))
    assert sandbox.contacts()["s@example.com"]["status"] == "unsubscribed"
    sandbox_api("POST", "/contacts", json=status("subscribed", "2026-03-01T00:00:00Z"))
    assert sandbox.contacts()["s@example.com"]["status"] == "subscribed"


def test_writing_tags_replaces_and_country_name_derives_code(sandbox, sandbox_api):
    sandbox_api("POST", "/contacts", json={**contact("t@example.com"), "tags": ["a", "b"], "country": "Lithuania"})
    sandbox_api("POST", "/contacts", json={**contact("t@example.com"), "tags": ["c"]})
    stored = sandbox.contacts()["t@example.com"]
    assert stored["tags"] == ["c"] and stored["countryCode"] == "LT"


def test_tag_calls_ignore_unknown_emails_and_need_a_selector(sandbox, sandbox_api):
    sandbox_api("POST", "/contacts", json=contact("known@example.com"))
    answer = sandbox_api("POST", "/contacts/tags", json={"tags": ["seg"], "emails": ["known@example.com", "x@y.com"]})
    assert answer.status_code == 202 and answer.content == b""
    assert sandbox.contacts()["known@example.com"]["tags"] == ["seg"] and "x@y.com" not in sandbox.contacts()
    assert sandbox_api("POST", "/contacts/tags", json={"tags": ["seg"]}).status_code == 400
    assert sandbox_api("DELETE", "/contacts/tags", json={"tags": [], "emails": ["a@b.co"]}).status_code == 400


def test_batches_run_asynchronously_and_echo_each_item(sandbox, sandbox_api):
    items = [contact(f"b{i}@example.com", sendWelcomeMessage=False) for i in range(3)] + [contact("bad")]
    created = sandbox_api("POST", "/batches", json={"method": "POST", "endpoint": "contacts", "items": items})
    assert created.status_code == 201 and created.json()["totalCount"] == 4
    batch_id = created.json()["batchID"]
    assert sandbox_api("GET", f"/batches/{batch_id}").json()["status"] in ("pending", "inProgress")
    assert wait_batch(sandbox_api, batch_id)["status"] == "finished"
    details = sandbox_api("GET", f"/batches/{batch_id}/items").json()
    assert [i["request"] for i in details["responses"]] == items[:3]
    [error] = details["errors"]
    assert error["request"] == items[3] and error["responseCode"] == 400
    assert error["response"]["errors"][0]["field"] == "identifiers.0.id"


def test_stopped_batches_leave_items_unprocessed(sandbox, sandbox_api):
    sandbox.set_faults(stop_batch_rate=1.0)
    items = [contact(f"s{i}@example.com", sendWelcomeMessage=False) for i in range(10)]
    batch_id = sandbox_api("POST", "/batches", json={"method": "POST", "endpoint": "contacts", "items": items}).json()["batchID"]
    batch = wait_batch(sandbox_api, batch_id)
    assert batch["status"] == "stopped" and batch["finishedCount"] == 5 and len(sandbox.contacts()) == 5


@pytest.mark.sandbox(batch_step_seconds=0.5)
def test_batch_steps_overlap_and_items_apply_in_creation_order(sandbox, sandbox_api):
    ids = [sandbox_api("POST", "/batches", json={"method": "POST", "endpoint": "contacts", "items": [
        {**contact("same@example.com", sendWelcomeMessage=False), "firstName": f"v{i}"}]}).json()["batchID"]
        for i in range(3)]
    batches = [wait_batch(sandbox_api, batch_id) for batch_id in ids]
    at = lambda batch, name: datetime.fromisoformat(batch[name].replace("Z", "+00:00")).timestamp()  # noqa: E731
    for batch in batches:  # each step takes the step time (stamps are cut to milliseconds)
        assert at(batch, "startedAt") - at(batch, "createdAt") >= 0.499
        assert at(batch, "endedAt") - at(batch, "startedAt") >= 0.499
    assert at(batches[1], "startedAt") < at(batches[0], "endedAt")  # not one batch after the other
    assert sandbox.contacts()["same@example.com"]["firstName"] == "v2"  # the last created wins


def test_list_batches_pages_and_requires_endpoint(sandbox_api):
    for i in range(3):
        sandbox_api("POST", "/batches", json={"method": "POST", "endpoint": "contacts", "items": [contact(f"l{i}@x.com")]})
    page = sandbox_api("GET", "/batches", params={"endpoint": "contacts", "limit": 2}).json()
    assert len(page["batches"]) == 2 and "offset=2" in page["paging"]["next"]
    assert sandbox_api("GET", "/batches").status_code == 400
    assert sandbox_api("GET", "/batches", params={"endpoint": "contacts", "limit": 251}).status_code == 400


def test_list_batches_newest_first_by_offset_and_filtered_by_day_and_status(sandbox_api):
    ids = [sandbox_api("POST", "/batches", json={"method": "POST", "endpoint": "contacts",
                                                 "items": [contact(f"d{i}@x.com")]}).json()["batchID"]
           for i in range(5)]
    query = {"endpoint": "contacts", "limit": 2}
    pages = [sandbox_api("GET", "/batches", params={**query, "offset": offset}).json() for offset in (0, 2, 4)]
    assert [b["batchID"] for page in pages for b in page["batches"]] == ids[::-1]
    assert "next" not in pages[2]["paging"] and "offset=2" in pages[2]["paging"]["previous"]
    today = datetime.now(timezone.utc).date()
    listed = lambda **days: len(sandbox_api("GET", "/batches", params={"endpoint": "contacts", **days}).json()["batches"])
    assert listed(dateFrom=today.isoformat(), dateTo=today.isoformat()) == 5
    assert listed(dateFrom=(today + timedelta(days=1)).isoformat()) == 0
    assert listed(dateTo=(today - timedelta(days=1)).isoformat()) == 0
    bad = sandbox_api("GET", "/batches", params={"endpoint": "contacts", "dateFrom": "30.11.2026"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "dateFrom"
    assert listed(status="stopped") == 0


@pytest.mark.sandbox(window_seconds=1.0, requests_per_minute=2, tag_requests_per_minute=1)
def test_sliding_window_limits_per_brand_and_kind(sandbox, sandbox_api):
    other_brand = sandbox.add_key("brand2")
    assert [sandbox_api("GET", "/contacts").status_code for _ in range(3)] == [200, 200, 429]
    limited = sandbox_api("GET", "/brands/current").json()
    assert limited["status"] == 429 and limited["retryAfter"] == 1
    assert sandbox_api("GET", "/contacts", key=other_brand).status_code == 200  # budgets are per brand
    tags = {"tags": ["t"], "emails": ["a@b.co"]}
    assert [sandbox_api("POST", "/contacts/tags", json=tags).status_code for _ in range(2)] == [202, 429]
    time.sleep(1.05)
    assert sandbox_api("GET", "/contacts").status_code == 200
    assert sandbox.rate_limited_count == 3


def test_request_log_records_what_happened(sandbox, sandbox_api, omnisend_key):
    sandbox_api("POST", "/contacts/tags", json={"tags": ["t"], "emails": ["a@b.co"]})
    [record] = sandbox.request_log()
    assert (record.method, record.path, record.status, record.brand_id, record.kind) == \
        ("POST", "/contacts/tags", 202, "brand1", "tags")
    assert record.body == {"tags": ["t"], "emails": ["a@b.co"]} and record.time > 0


def test_contract_check_catches_a_bad_response(sandbox):
    """The teardown check is a real check: a response outside the contract is reported."""
    assert sandbox.contract.response_errors("GET", "/batches/{batchID}", 200, {"totalCount": "three"}) == \
        ["totalCount: must be of type integer"]
    assert sandbox.contract.response_errors("POST", "/contacts/tags", 202, {"unexpected": True})
    assert sandbox.contract.response_errors("GET", "/contacts", 429, {"retryAfter": 1.5})


def test_admin_surface_for_other_processes(sandbox, sandbox_api):
    admin = sandbox.url.removesuffix("/api") + "/_sandbox"
    key = requests.post(f"{admin}/keys", json={"brandID": "brand9"}, timeout=5).json()["key"]
    assert key.startswith("brand9-")
    assert requests.post(f"{admin}/faults", json={"rate_limit_storm": 1}, timeout=5).status_code == 200
    assert sandbox_api("GET", "/contacts", key=key).status_code == 429
    sandbox_api("POST", "/contacts", key=key, json=contact("z@example.com"))
    state = requests.get(f"{admin}/state", timeout=5).json()
    assert "z@example.com" in state["brands"]["brand9"]["contacts"] and state["rateLimitedCount"] == 1
    log = requests.get(f"{admin}/log", timeout=5).json()
    assert [entry["status"] for entry in log] == [429, 201]
    assert requests.post(f"{admin}/reset", timeout=5).status_code == 200
    assert sandbox.request_log() == [] and sandbox.contacts("brand9") == {}


def test_runs_as_a_process_printing_url_and_key():
    process = subprocess.Popen([sys.executable, "-m", "tools.omnisend_sandbox", "--port", "0",
                                "--key", "brandX-localsecret", "--window-seconds", "5"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url_line, key_line = process.stdout.readline(), process.stdout.readline()
        url = url_line.strip().split("OMNISEND_API_URL=")[1]
        assert key_line.strip().endswith("brandX-localsecret")
        answer = requests.get(url + "/brands/current", timeout=5, headers={
            "Authorization": "Omnisend-API-Key brandX-localsecret", "Omnisend-Version": "2026-03-15"})
        assert answer.json()["brandID"] == "brandX"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_all_scopes_cover_what_the_client_uses():
    assert {"contacts.read", "contacts.write", "brands.read"} <= set(ALL_SCOPES)
    with OmnisendSandbox() as standalone:  # usable without the fixture, as a context manager
        assert standalone.url.startswith("http://127.0.0.1:") and standalone.url.endswith("/api")
        assert json.loads(json.dumps(standalone.state()))["requestCount"] == 0
