"""Run telemetry (shared/telemetry.py): the typed events, what they carry, and what reaches Application Insights.

The last tests run the real Azure Monitor OpenTelemetry distro in a child process against an ingestion
endpoint on loopback (a plain HTTP server standing in for Application Insights, as the sandbox stands
in for Omnisend) and read the envelopes exactly as the exporter sends them.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shared import telemetry
from shared.runs import Counts, ExportSnapshot, Run, RunStatus, Trigger
from shared.telemetry import ChunkFailed, RunFinished

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "64b7a3f2c1d0e9f8a7b6c5d4-Zx9QwErTyUiOpAsDfGhJkLzXcVbNm1234567890abcdefGHIJ"
EMAIL = "jane.doe@example.com"

RUN = RunFinished(
    export_id="exp-1", run_id="20261130T020000-1a2b3c4d", trigger="schedule", status="partiallySucceeded",
    rows=1000, sent=950, rejected=40, failed=10, untagged=3, duration_seconds=1234.5678, rate_limited=2,
)
# A reason as an error message could read: an address and the connection's key must not survive.
CHUNK = ChunkFailed(
    export_id="exp-1", run_id="20261130T020000-1a2b3c4d", chunk_seq=7, rows=1000,
    reason=f"gave up after repeated errors: Omnisend answered 401 for {EMAIL} (j***@example.com) "
           f"with key {API_KEY}",
)
RUN_DIMENSIONS = {
    "exportId": "exp-1", "runId": "20261130T020000-1a2b3c4d", "trigger": "schedule",
    "status": "partiallySucceeded", "rows": 1000, "sent": 950, "rejected": 40, "failed": 10,
    "untagged": 3, "durationSeconds": 1234.568, "rateLimited": 2,
}


def assert_no_secret(text: str) -> None:
    assert API_KEY not in text and API_KEY[:24] not in text and API_KEY[-40:] not in text
    assert "@" not in text, f"an e-mail address (or part of one) left the app: {text[:300]}"


# --- the events ------------------------------------------------------------------------------------


def test_run_finished_carries_exactly_the_run_dimensions():
    assert RUN.name == telemetry.RUN_FINISHED == "ExportRunFinished"
    assert RUN.dimensions() == RUN_DIMENSIONS
    assert tuple(RUN.dimensions()) == telemetry.RUN_FINISHED_DIMENSIONS


def test_chunk_failed_carries_the_chunk_and_a_scrubbed_reason():
    assert CHUNK.name == telemetry.CHUNK_FAILED == "ExportChunkFailed"
    dimensions = CHUNK.dimensions()
    assert tuple(dimensions) == telemetry.CHUNK_FAILED_DIMENSIONS
    assert {k: v for k, v in dimensions.items() if k != "reason"} == {
        "exportId": "exp-1", "runId": "20261130T020000-1a2b3c4d", "chunkSeq": 7, "rows": 1000}
    assert dimensions["reason"] == (
        "gave up after repeated errors: Omnisend answered 401 for <email> (<email>) with key <redacted>")
    assert_no_secret(json.dumps(dimensions))


@pytest.mark.parametrize("text, expected", [
    ("no secret here, run 20261130T020000-1a2b3c4d chunk 12", "no secret here, run 20261130T020000-1a2b3c4d chunk 12"),
    ("mail a.b+c@sub.example.co.uk now", "mail <email> now"),
    ("masked ***@example.com", "masked <email>"),
    ("token abcdefghijklmnopqrstuvwxyz0123456789ABCD end", "token <redacted> end"),
    ("batch 3fa85f64-5717-4562-b3fc-2c963f66afa6 stopped", "batch 3fa85f64-5717-4562-b3fc-2c963f66afa6 stopped"),
    ("x" * 600, "x" * 499 + "…"),
])
def test_scrub_removes_addresses_and_tokens_and_keeps_the_rest(text, expected):
    assert telemetry.scrub(text) == expected


@pytest.mark.parametrize("change, message", [
    ({"export_id": ""}, r"RunFinished.export_id must be a non-empty string"),
    ({"rows": -1}, r"RunFinished.rows must be a whole number >= 0, got -1"),
    ({"sent": 1.5}, r"RunFinished.sent must be a whole number"),
    ({"rate_limited": True}, r"RunFinished.rate_limited must be a whole number"),
    ({"duration_seconds": float("nan")}, r"RunFinished.duration_seconds must be a number of seconds"),
])
def test_bad_run_fields_are_refused_naming_the_field(change, message):
    fields = {**RUN.__dict__, **change}
    with pytest.raises(ValueError, match=message):
        RunFinished(**fields)


def test_bad_chunk_fields_are_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"ChunkFailed.chunk_seq must be a whole number >= 0, got '3'"):
        ChunkFailed(export_id="e", run_id="r", chunk_seq="3", rows=1, reason="x")
    with pytest.raises(TypeError, match="takes a RunFinished or ChunkFailed event, got dict"):
        telemetry.emit({"name": "ExportRunFinished"})


SNAPSHOT = ExportSnapshot("conn-1", ("Vip",), {"email": "Email"}, True)


def test_the_event_of_a_run_is_read_from_the_run_engines_record():
    run = Run(run_id="20261130T020000-1a2b3c4d", export_id="exp-1", trigger=Trigger.UPLOAD, export=SNAPSHOT,
              status=RunStatus.FAILED, counts=Counts(rows=10, sent=4, rejected=3, failed=3), untagged=2,
              rate_limited=5, started_at="2026-11-30T02:00:00Z", finished_at="2026-11-30T03:30:15Z",
              error="bad key")

    event = RunFinished.from_run(run)

    assert event.dimensions() == {
        "exportId": "exp-1", "runId": "20261130T020000-1a2b3c4d", "trigger": "upload", "status": "failed",
        "rows": 10, "sent": 4, "rejected": 3, "failed": 3, "untagged": 2, "durationSeconds": 5415.0,
        "rateLimited": 5,
    }
    assert event.level == logging.WARNING
    unfinished = Run(run_id="r", export_id="e", trigger=Trigger.MANUAL, export=SNAPSHOT,
                     started_at="2026-11-30T02:00:00Z")
    now = datetime(2026, 11, 30, 2, 1, tzinfo=timezone.utc)
    assert RunFinished.from_run(unfinished, now=now).duration_seconds == 60.0


# --- the log record (what the exporter, or a developer's console, receives) --------------------------


def test_emit_logs_one_record_with_the_event_name_and_dimensions_as_attributes(caplog):
    caplog.set_level(logging.INFO, logger=telemetry.EVENT_LOGGER)

    telemetry.emit(RUN)
    event = telemetry.chunk_failed(**{k: getattr(CHUNK, k) for k in ("export_id", "run_id", "chunk_seq", "rows")},
                                   reason=f"failed for {EMAIL}")

    run_record, chunk_record = [r for r in caplog.records if r.name == telemetry.EVENT_LOGGER]
    assert getattr(run_record, telemetry.CUSTOM_EVENT_ATTRIBUTE) == "ExportRunFinished"
    assert {k: getattr(run_record, k) for k in RUN_DIMENSIONS} == RUN_DIMENSIONS
    assert run_record.levelno == logging.INFO
    assert run_record.getMessage().startswith("ExportRunFinished export=exp-1 run=20261130T020000-1a2b3c4d")
    assert getattr(chunk_record, telemetry.CUSTOM_EVENT_ATTRIBUTE) == "ExportChunkFailed"
    assert chunk_record.reason == event.reason == "failed for <email>" and chunk_record.levelno == logging.WARNING
    assert_no_secret(caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str))


def test_without_a_connection_string_nothing_is_exported(monkeypatch):
    from shared.settings import Settings

    monkeypatch.setattr(telemetry, "_exporting", None)
    assert telemetry.configure(Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})) is False


def test_sdk_request_logging_is_quieted_to_warnings():
    policy = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    before = {name: logging.getLogger(name).level for name in telemetry.NOISY_SDK_LOGGERS}
    try:
        policy.setLevel(logging.NOTSET)
        telemetry.quiet_sdk_logging()
        assert not policy.isEnabledFor(logging.INFO) and policy.isEnabledFor(logging.WARNING)
        assert not logging.getLogger("azure.storage.blob._shared").isEnabledFor(logging.INFO)
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


# --- what Application Insights receives -------------------------------------------------------------


class Ingestion:
    """Loopback stand-in for Application Insights' ingestion endpoint (POST /v2.1/track)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        ingestion = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                ingestion.requests.append((self.path, body))
                items = len(json.loads(body)) if body.startswith(b"[") else body.count(b"\n") + 1
                answer = json.dumps({"itemsReceived": items, "itemsAccepted": items, "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def envelopes(self) -> list[dict]:
        found = []
        for path, body in self.requests:
            assert path.endswith("/v2.1/track"), path
            text = body.decode()
            found += json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
        return found

    def __enter__(self) -> "Ingestion":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


# Runs in a child process: the distro sets process-wide OpenTelemetry providers. Any connection to an
# address off loopback (and any name lookup for one) is refused and recorded: nothing may phone home.
PROBE = textwrap.dedent(
    """
    import json, socket, sys
    refused = []
    LOOPBACK = ("127.0.0.1", "localhost", "::1")
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host in LOOPBACK or host.startswith("127.")):
            refused.append(host)
            raise OSError("refused by the test: not loopback")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and not (host in LOOPBACK or host.startswith("127.")):
            refused.append(host)
            raise socket.gaierror("refused by the test: not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo

    from shared import telemetry
    from shared.settings import Settings

    events = json.loads(sys.argv[1])
    assert telemetry.configure(Settings.from_env()), "the exporter did not start"
    telemetry.emit(telemetry.RunFinished(**events["run"]))
    telemetry.emit(telemetry.ChunkFailed(**events["chunk"]))
    print(json.dumps({"refused": refused}))
    """
)


@pytest.fixture(scope="module")
def exported():
    """(envelopes received, probe output) for RUN and CHUNK sent through the real distro and exporter."""
    with Ingestion() as ingestion:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "OTEL_"))},
            "APPLICATIONINSIGHTS_CONNECTION_STRING":
                f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint={ingestion.url}",
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # the exporter's own usage reports
            "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",  # its settings download
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        }
        events = {"run": dict(RUN.__dict__), "chunk": dict(CHUNK.__dict__)}
        done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(events)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return ingestion.envelopes(), json.loads(done.stdout.strip().splitlines()[-1]), done


def test_application_insights_receives_each_event_as_a_custom_event_with_its_dimensions(exported):
    envelopes, _, _ = exported
    events = {e["data"]["baseData"]["name"]: e for e in envelopes if e["data"]["baseType"] == "EventData"}
    assert set(events) == {"ExportRunFinished", "ExportChunkFailed"}, [e["data"]["baseType"] for e in envelopes]
    run = events["ExportRunFinished"]
    assert run["name"] == "Microsoft.ApplicationInsights.Event"
    assert run["iKey"] == "00000000-0000-0000-0000-000000000001"
    # customDimensions are strings: the KQL in infra/queries converts them (toint, todouble).
    properties = run["data"]["baseData"]["properties"]
    assert {k: properties[k] for k in RUN_DIMENSIONS} == {k: str(v) for k, v in RUN_DIMENSIONS.items()}
    chunk = events["ExportChunkFailed"]["data"]["baseData"]["properties"]
    assert {k: chunk[k] for k in telemetry.CHUNK_FAILED_DIMENSIONS} == {
        k: str(v) for k, v in CHUNK.dimensions().items()}


def test_nothing_but_the_events_is_sent_and_nothing_leaves_loopback(exported):
    envelopes, probe, _ = exported
    assert [e["data"]["baseType"] for e in envelopes] == ["EventData", "EventData"], "no traces, metrics or requests"
    assert probe["refused"] == [], f"the exporter tried to reach {probe['refused']}"


def test_no_key_and_no_email_reach_application_insights(exported):
    envelopes, _, done = exported
    assert_no_secret(json.dumps(envelopes))
    assert_no_secret(done.stdout + done.stderr)
