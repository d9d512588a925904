"""Fixtures of the run engine tests: settings on the Omnisend sandbox, exports to run, and a pump
that delivers queue messages the way the Functions host does."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared import blobstate, documents, runs, storage
from tests.runs.faults import FaultPlan, ProcessDeath
from tools.sample_export import DEFAULT_MAPPING, generate_profiles, write_plain_segment

MAX_DEQUEUE = 5  # host.json maxDequeueCount


@pytest.fixture()
def api_settings(settings, sandbox):
    """Settings pointing at the sandbox (also used by the `api_connection` fixture)."""
    return dataclasses.replace(settings, omnisend_api_url=sandbox.url, chunk_rows=100)


@pytest.fixture()
def export_of(api_settings, api_connection, omnisend_key, segments_container):
    """export_of(segments, tag_contacts=True, tags=None, max_removal_percent=20, **connection_changes) -> a
    stored Export on a new connection (`tags`: segment -> tag, where not the segment's name)."""

    def make(segments: list[str], tag_contacts: bool = True, run_on=("schedule",), tags: dict | None = None,
             max_removal_percent: float = documents.DEFAULT_MAX_REMOVAL_PERCENT, **connection_changes):
        connection = api_connection(api_key=connection_changes.pop("api_key", omnisend_key),
                                    **{"requests_per_minute": 50_000, "tag_requests_per_minute": 50_000,
                                       **connection_changes})
        now = documents.utc_now()
        export = documents.Export(
            id=documents.new_id(), display_name="test", connection_id=connection.id, segments=list(segments),
            mapping=dict(DEFAULT_MAPPING), created_at=now, updated_at=now, created_by="admin@contoso.com",
            run_on=list(run_on), tag_contacts=tag_contacts, tags=dict(tags or {}),
            max_removal_percent=max_removal_percent,
        )
        documents.DocumentStore(api_settings).put_export(export)
        return export

    return make


class Pump:
    """Delivers the run queue's messages as the Functions host would: a failed invocation leaves its
    message for another attempt (at once here, where the host waits for the visibility timeout),
    the fifth failure hands it to the poison handler. When the queue stays empty and the run has not
    ended, it runs the watchdog as if RUN_STALL_MINUTES had passed (`watchdog=True`)."""

    def __init__(self, settings, *, watchdog: bool = False, probe: FaultPlan | None = None) -> None:
        self.settings = settings
        self.watchdog = watchdog
        self.probe = probe
        self.queue = storage.queue(settings, settings.export_queue)
        self.delivered = 0
        self.watchdog_passes = 0

    def until_ended(self, run_id: str, timeout: float = 60.0) -> runs.Run:
        return self.until(run_id, lambda run: run.terminal, timeout)

    def until_applied(self, run_id: str, timeout: float = 60.0) -> runs.Run:
        """Until applying the run's approved removals has ended (applied or failed)."""
        return self.until(run_id, lambda run: run.terminal and not run.applying_removals, timeout)

    def until(self, run_id: str, done, timeout: float = 60.0) -> runs.Run:
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            run = runs.get_run(self.settings, run_id)
            if done(run):
                return run
            received = self.receive()
            for message in received:
                self.deliver(message)
            if received:
                quiet_since = time.monotonic()
            elif self.watchdog and time.monotonic() - quiet_since > 0.5 and not self.in_flight():
                self.watch()
                quiet_since = time.monotonic()
            else:
                time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not get there within {timeout:.0f} s: "
                             f"{runs.get_run(self.settings, run_id)}")

    def receive(self) -> list:
        try:
            return list(self.queue.receive_messages(max_messages=16, visibility_timeout=30))
        except Exception as error:  # the queue does not exist before the first message
            if "QueueNotFound" in str(error):
                return []
            raise

    def watch(self, after: timedelta | None = None) -> runs.WatchReport:
        """One watchdog pass, `after` (default: just over RUN_STALL_MINUTES) from now."""
        self.watchdog_passes += 1
        after = after or timedelta(minutes=self.settings.run_stall_minutes + 1)
        return runs.watch_runs(self.settings, now=datetime.now(timezone.utc) + after)

    def in_flight(self) -> int:
        """Messages in the queue, visible or not: a chunk waiting on its batches is one (sent again with
        a delay of seconds), so a quiet queue holding it is not a stalled run."""
        try:
            return self.queue.get_queue_properties().approximate_message_count
        except ResourceNotFoundError:  # nothing was ever queued
            return 0

    def deliver(self, message) -> None:
        self.delivered += 1
        if self.probe is not None:
            self.probe.context = _kind(message.content)
        previous = blobstate.install_probe(self.probe)
        try:
            runs.process_message(self.settings, message.content, delivery=message.id)
        except (Exception, ProcessDeath):  # an error, or the process's death
            blobstate.install_probe(previous)
            if message.dequeue_count >= MAX_DEQUEUE:
                self.poison(message)
            else:
                self.queue.update_message(message, visibility_timeout=0)
            return
        blobstate.install_probe(previous)
        self.queue.delete_message(message)

    def poison(self, message) -> None:
        try:
            runs.fail_poisoned_message(self.settings, message.content, delivery=f"poison-{message.id}")
        except Exception:  # noqa: BLE001 - the host would move it to <queue>-poison-poison: the watchdog's turn
            pass
        self.queue.delete_message(message)


def _kind(body: bytes) -> str:
    try:
        return json.loads(body)["kind"]
    except (ValueError, KeyError, TypeError):
        return "?"


@pytest.fixture()
def pump(api_settings):
    """pump(run_id, **Pump options) -> the ended Run."""

    def run(run_id: str, *, timeout: float = 60.0, **options) -> runs.Run:
        return Pump(api_settings, **options).until_ended(run_id, timeout)

    return run


@pytest.fixture()
def pump_approval(api_settings):
    """pump_approval(run_id, **Pump options) -> the Run once applying its approved removals has ended."""

    def apply(run_id: str, *, timeout: float = 60.0, **options) -> runs.Run:
        return Pump(api_settings, **options).until_applied(run_id, timeout)

    return apply


@dataclasses.dataclass
class PartedRun:
    """A started run whose plan message is received, not yet delivered (see `parted_run`)."""

    run_id: str
    emails: list[str]
    pump: Pump
    plan_message: object


@pytest.fixture()
def parted_run(api_settings, export_of, segments_container, monkeypatch) -> PartedRun:
    """A run of a 1,000-row segment of 100-row chunks whose planner queues plan parts of chunks 0, 1-2
    and 3-5 (parts of 200 rows and more) before its plan queues 6-9."""
    from shared.runs import parts

    monkeypatch.setattr(parts, "PART_MIN_ROWS", 200)
    emails = clean_segment(segments_container, "Vip", 1000)
    run_id = runs.start_run(api_settings, export_of(["Vip"]), "manual").run_id
    pump = Pump(api_settings)
    (plan_message,) = pump.receive()
    return PartedRun(run_id, emails, pump, plan_message)


def read_rejects(settings, run_id: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(runs.rejects_csv(settings, run_id).decode())))


def clean_segment(container, name: str, count: int, seed: int = 1) -> list[str]:
    """A plain segment of `count` valid, distinct profiles; returns their emails in row order."""
    profiles = generate_profiles(count, seed=seed, bad_share=0.0, duplicate_share=0.0)
    write_plain_segment(container, name, profiles)
    return [profiles.expected(i).email for i in range(count)]


def counts(run: runs.Run) -> dict:
    """rows, sent, rejected, failed (rows = sent + unchanged + rejected + failed)."""
    found = run.counts.to_dict()
    return {name: found[name] for name in ("rows", "sent", "rejected", "failed")}


def sync_counts(run: runs.Run) -> dict:
    """added, updated, unchanged (sent = added + updated)."""
    found = run.counts.to_dict()
    return {name: found[name] for name in ("added", "updated", "unchanged")}
