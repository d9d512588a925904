"""End to end through the dev host: Azurite, the Omnisend sandbox, the function app with 4 queue workers.

One Customer Insights export (2 overlapping segments, 3 partitions each, 12,000 rows with bad rows,
carrying the sample's custom columns) is run by each trigger; each run uses its own Omnisend brand so
final states can be compared exactly.
"""
from __future__ import annotations

import csv
import io
import os
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from itertools import count

import pytest
import requests

from shared import schedule
from shared.documents import DocumentStore
from shared.runs.messages import ChunkMessage
from shared.runs.store import RunStore
from shared.settings import get_settings
from tests.conftest import hosted_app
from tests.oracle import expected_run, rejects_by_place
from tools.demo import create_export
from tools.devhost import DevHost
from tools.omnisend_sandbox import OmnisendSandbox
from tools.sample_export import (
    DEFAULT_MAPPING, EXTENDED_MAPPING, generate_profiles, overlapping_segments, write_ci_export,
)

PARTITIONS = 3
SEGMENTS = ("HighValue", "Newsletter")
FAST = 100_000  # requests per minute for connections and the sandbox where the budget is not under test
_brands = count(1)


@dataclass
class Stack:
    host: DevHost
    sandbox: OmnisendSandbox
    segments: object  # ContainerClient of the segments container
    session: requests.Session
    keys: dict[str, str] = field(default_factory=dict)  # brand -> API key

    @property
    def api(self) -> str:
        return f"{self.host.url}/api"

    def call(self, method: str, path: str, body: dict | None = None, expect: int = 200) -> dict:
        response = self.session.request(method, f"{self.api}/{path}", json=body, timeout=30)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content and "json" in response.headers.get("Content-Type", "") else {}

    def connection(self, *, rpm: int = FAST, tag_rpm: int = FAST, **extra) -> tuple[str, str]:
        """A connection on a brand of its own: (connection id, brand id)."""
        brand = f"brand{next(_brands)}"
        key = self.keys[brand] = self.sandbox.add_key(brand)
        body = {"displayName": f"Omnisend {brand}", "apiKey": key, "consent": True,
                "requestsPerMinute": rpm, "tagRequestsPerMinute": tag_rpm, **extra}
        return self.call("POST", "connections", body, expect=201)["id"], brand

    def export(self, connection_id: str, run_on: list[str], **extra) -> str:
        body = {"displayName": "Segments to Omnisend", "connectionId": connection_id, "segments": list(SEGMENTS),
                "mapping": dict(DEFAULT_MAPPING), "runOn": run_on, **extra}
        if "customProperties" in body["mapping"]:  # as `make run` creates it (an API may take column names only)
            return create_export(self.session, f"{self.api}/exports", body, dict(os.environ))["id"]
        return self.call("POST", "exports", body, expect=201)["id"]

    def wait_for_run(self, run_id: str, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.call("GET", f"runs/{run_id}")
            if run["finishedAt"]:
                return run
            time.sleep(0.25)
        raise AssertionError(f"run {run_id} did not finish within {timeout:.0f} s: {run}")

    def only_run(self, export_id: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.call("GET", f"exports/{export_id}/runs")["runs"]
            if found:
                assert len(found) == 1, found
                return self.wait_for_run(found[0]["runId"])
            time.sleep(0.2)
        raise AssertionError(f"no run of export {export_id} started")

    def rejects(self, run_id: str) -> list[dict]:
        response = self.session.get(f"{self.api}/runs/{run_id}/rejects", timeout=30)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(response.text)))

    def blob_created(self, path: str) -> None:
        event = {
            "id": str(uuid.uuid4()), "eventType": "Microsoft.Storage.BlobCreated",
            "subject": f"/blobServices/default/containers/{self.segments.container_name}/blobs/{path}",
            "eventTime": "2026-11-28T02:00:00Z", "dataVersion": "", "metadataVersion": "1",
            "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
            "data": {"api": "PutBlob", "url": f"{self.segments.url}/{path}", "contentType": "application/json",
                     "blobType": "BlockBlob"},
        }
        response = self.session.post(
            f"{self.host.url}/runtime/webhooks/blobs",
            params={"functionName": "Host.Functions.segment_uploaded"}, json=[event], timeout=30,
            headers={"aeg-event-type": "Notification"},
        )
        assert response.status_code in (200, 202), response.text


@pytest.fixture(scope="module")
def stack(azurite, tmp_path_factory):
    with hosted_app(azurite, tmp_path_factory.mktemp("secrets"), workers=4) as (host, sandbox, segments):
        yield Stack(host, sandbox, segments, requests.Session())


@pytest.fixture(scope="module")
def ci_export(stack):
    """12,000 rows: two segments of 6,000 cut from 10,000 people (2,000 in both), 3 partitions each."""
    segments = overlapping_segments(SEGMENTS, generate_profiles(10_000, seed=42, bad_share=0.02, custom_fields=True))
    blobs = write_ci_export(stack.segments, segments, partitions=PARTITIONS)
    return segments, blobs


def assert_final_state(stack: Stack, brand: str, run: dict, segments: dict) -> None:
    expected = expected_run(segments, PARTITIONS)
    assert run["status"] == "partiallySucceeded", run
    rejects = rejects_by_place(stack.rejects(run["runId"]))
    wrong = {p: (rejects.get(p), expected.rejects.get(p)) for p in rejects.keys() | expected.rejects.keys()
             if rejects.get(p) != expected.rejects.get(p)}
    assert not wrong, f"{len(wrong)} rows (place: (rejected as, expected)): {sorted(wrong.items())[:10]}"
    assert run["counts"] == expected.counts
    assert run["progress"] == 1.0
    contacts = stack.sandbox.contacts(brand)
    assert set(contacts) == set(expected.first_names)
    assert {email: set(c["tags"]) for email, c in contacts.items()} == expected.tags
    assert {email: c.get("firstName", "") for email, c in contacts.items()} == expected.first_names
    assert not [e for e in stack.sandbox.welcome_messages if e in contacts]


def test_blob_upload_event_runs_the_exports_of_the_segments(stack, ci_export):
    segments, blobs = ci_export
    connection_id, brand = stack.connection()
    export_id = stack.export(connection_id, ["upload"])
    stack.export(connection_id, [], tagContacts=False)  # on demand only: an upload must not start it
    partition = next(b for b in blobs if b.endswith(".csv"))

    stack.blob_created(partition)  # partitions alone do not start runs
    stack.host.wait_idle()
    assert stack.call("GET", f"exports/{export_id}/runs")["runs"] == []

    stack.blob_created(next(b for b in blobs if b.endswith("model.json")))
    run = stack.only_run(export_id)

    assert run["trigger"] == "upload"
    assert_final_state(stack, brand, run, segments)


def test_birthdate_gender_and_custom_properties_reach_omnisend(stack, ci_export):
    segments, _ = ci_export
    connection_id, brand = stack.connection()
    export_id = stack.export(connection_id, [], mapping=EXTENDED_MAPPING)
    run = stack.wait_for_run(stack.call("POST", f"exports/{export_id}/runs", expect=202)["runId"])
    assert_final_state(stack, brand, run, segments)  # no row is rejected for its custom fields

    expected = expected_run(segments, PARTITIONS).custom_fields
    contacts = stack.sandbox.contacts(brand)
    found = {email: {key: c[key] for key in ("birthdate", "gender", "customProperties") if c.get(key)}
             for email, c in contacts.items()}
    wrong = {email: (found.get(email), expected.get(email)) for email in found.keys() | expected.keys()
             if found.get(email) != expected.get(email)}
    assert not wrong, f"{len(wrong)} contacts (as stored, expected): {sorted(wrong.items())[:5]}"
    assert sum("birthdate" in f for f in found.values()) > len(found) // 2
    assert {type(v) for f in found.values() for v in f["customProperties"].values()} == {str, float, list}


def test_timer_runs_scheduled_exports(stack, ci_export):
    segments, _ = ci_export
    connection_id, brand = stack.connection()
    export_id = stack.export(connection_id, ["schedule"])  # schedule null: EXPORT_SCHEDULE, 02:00 UTC
    # As if saved two days ago and the timer last looked then: the latest 02:00 UTC has passed since.
    settings = get_settings()
    store = DocumentStore(settings)
    two_days_ago = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    export = store.get_export(export_id)
    store.put_export(replace(export, created_at=two_days_ago, updated_at=two_days_ago), if_match=export.etag)
    state = RunStore(settings).container
    schedule.advance_cursor(state, schedule.read_cursor(state), datetime.now(timezone.utc) - timedelta(days=2))
    assert stack.host.functions["scheduled_exports"].trigger["schedule"] == "0 */5 * * * *"

    stack.session.post(f"{stack.host.url}/admin/functions/scheduled_exports", json={"input": ""}, timeout=30)
    run = stack.only_run(export_id)

    assert run["trigger"] == "schedule"
    assert_final_state(stack, brand, run, segments)
    stack.session.post(f"{stack.host.url}/admin/functions/scheduled_exports", json={"input": ""}, timeout=30)
    stack.host.wait_idle(30)
    assert [r["runId"] for r in stack.call("GET", f"exports/{export_id}/runs")["runs"]] == [run["runId"]]


def test_http_run_survives_429_storms_5xx_drops_and_a_duplicated_message(stack, ci_export, monkeypatch):
    segments, _ = ci_export
    connection_id, brand = stack.connection()
    export_id = stack.export(connection_id, [])
    duplicated = []
    send = RunStore.send

    def enqueue_twice_once(store, messages, delay=0):
        messages = list(messages)
        chunk = next((m for m in messages if isinstance(m, ChunkMessage)), None)
        if chunk and not duplicated:
            duplicated.append(chunk.seq)
            messages.append(chunk)  # the queue delivers this chunk twice
        return send(store, messages, delay)

    monkeypatch.setattr(RunStore, "send", enqueue_twice_once)
    stack.sandbox.set_faults(error_rate=0.05, drop_rate=0.03, rate_limit_storm=25, seed=7)
    try:
        started = stack.call("POST", f"exports/{export_id}/runs", expect=202)
        assert started["status"] == "queued"
        run = stack.wait_for_run(started["runId"])
    finally:
        stack.sandbox.set_faults()

    assert duplicated and stack.sandbox.rate_limited_count >= 25
    assert run["trigger"] == "manual"
    assert_final_state(stack, brand, run, segments)


def test_request_rate_stays_within_the_connection_budget_with_4_workers(stack, ci_export):
    rpm, tag_rpm = 600, 300
    connection_id, brand = stack.connection(rpm=rpm, tag_rpm=tag_rpm)
    export_id = stack.export(connection_id, [], segments=["Newsletter"])
    started = time.monotonic()
    run = stack.wait_for_run(stack.call("POST", f"exports/{export_id}/runs", expect=202)["runId"])
    assert run["status"] == "partiallySucceeded"

    log = [r for r in stack.sandbox.request_log() if r.brand_id == brand]
    for kind, budget in (("general", rpm), ("tags", tag_rpm)):
        times = sorted(r.time for r in log if r.kind == kind)
        window = 10.0
        # The shared budget admits a short burst (2 grants ahead of the steady rate, 4 allowed for here).
        allowed = budget * window / 60 + 5
        busiest = max(sum(1 for t in times if start <= t < start + window) for start in times)
        assert busiest <= allowed, f"{kind}: {busiest} requests in {window:.0f} s, budget allows {allowed:.0f}"
    assert not [r for r in log if r.status == 429]
    assert time.monotonic() - started > 5  # the budget, not the sandbox, paced the run


def test_deleting_an_export_cancels_its_run(stack, ci_export):
    connection_id, brand = stack.connection(rpm=300, tag_rpm=60)
    export_id = stack.export(connection_id, [])
    run_id = stack.call("POST", f"exports/{export_id}/runs", expect=202)["runId"]
    assert stack.call("POST", f"exports/{export_id}/runs", expect=409)["runId"] == run_id
    time.sleep(2)
    stack.call("DELETE", f"exports/{export_id}", expect=204)
    cancelled_at = time.monotonic()
    run = stack.wait_for_run(run_id, timeout=60)
    assert run["status"] == "cancelled"
    stack.host.wait_idle(60)
    writes_after = [r for r in stack.sandbox.request_log()
                    if r.brand_id == brand and r.method == "POST" and r.time > cancelled_at]
    # A worker asks before every write whether the run is still wanted: each of the 4 may have had
    # one write on its way when the run was cancelled, none may start later.
    assert len(writes_after) <= 4, [(r.path, round(r.time - cancelled_at, 3)) for r in writes_after]
    assert run["counts"]["rows"] == run["counts"]["sent"] + run["counts"]["rejected"] + run["counts"]["failed"]


def test_a_rejected_key_fails_the_run_with_a_clear_error(stack, ci_export):
    connection_id, brand = stack.connection()
    export_id = stack.export(connection_id, [])
    stack.sandbox.add_key(brand, retired=True, key=stack.keys[brand])  # revoked in Omnisend after saving
    run = stack.wait_for_run(stack.call("POST", f"exports/{export_id}/runs", expect=202)["runId"])
    assert run["status"] == "failed"
    assert "rejected the API key" in run["error"]
    assert run["counts"] == {"rows": 0, "sent": 0, "rejected": 0, "failed": 0, "added": 0, "updated": 0,
                             "unchanged": 0}


def test_the_watchdog_timer_is_served_and_fires(stack):
    function = stack.host.functions["run_watchdog"]
    assert function.trigger_type == "timerTrigger" and function.trigger["schedule"] == "0 */5 * * * *"
    response = stack.session.post(f"{stack.host.url}/admin/functions/run_watchdog", json={"input": ""}, timeout=30)
    assert response.status_code == 202
    stack.host.wait_idle(30)
    stack.host.invoke_timer("run_watchdog")  # synchronously: an error would be raised here


def test_health_answers_without_a_principal_or_a_key(stack):
    response = requests.get(f"{stack.api}/health", timeout=10)
    assert response.status_code == 200
    assert stack.host.functions["health"].trigger["authLevel"].lower() == "anonymous"
