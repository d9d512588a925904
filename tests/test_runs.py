"""The run engine without a host: messages pumped from the Azurite queue the way the Functions host
delivers them (a failed invocation leaves the message for a retry, the fifth failure poisons it)."""
from __future__ import annotations

import csv
import dataclasses
import io
import time

import pytest

from shared import documents, runs, storage
from tools.sample_export import DEFAULT_MAPPING, generate_profiles, write_plain_segment

MAX_DEQUEUE = 5


@pytest.fixture()
def api_settings(settings, sandbox):
    """Settings pointing at the sandbox (also used by the `api_connection` fixture)."""
    return dataclasses.replace(settings, omnisend_api_url=sandbox.url, chunk_rows=100)


@pytest.fixture()
def export_of(api_settings, api_connection, omnisend_key, segments_container):
    """export_of(segments, **connection_changes) -> a stored Export of those segments on a new connection."""

    def make(segments: list[str], tag_contacts: bool = True, **connection_changes) -> documents.Export:
        connection = api_connection(api_key=omnisend_key, requests_per_minute=50_000,
                                    tag_requests_per_minute=50_000, **connection_changes)
        now = documents.utc_now()
        export = documents.Export(
            id=documents.new_id(), display_name="test", connection_id=connection.id, segments=segments,
            mapping=dict(DEFAULT_MAPPING), created_at=now, updated_at=now, created_by="admin@contoso.com",
            run_on=["schedule"], tag_contacts=tag_contacts,
        )
        documents.DocumentStore(api_settings).put_export(export)
        return export

    return make


def pump(settings, run_id: str, *, timeout: float = 60.0, deliver=runs.process_message) -> runs.Run:
    """Deliver queue messages until the run ends, as the host would."""
    queue = storage.queue(settings, settings.export_queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = runs.get_run(settings, run_id)
        if run.terminal:
            return run
        for message in queue.receive_messages(max_messages=16, visibility_timeout=30):
            try:
                deliver(settings, message.content)
            except Exception:
                if message.dequeue_count >= MAX_DEQUEUE:
                    runs.fail_poisoned_message(settings, message.content)
                    queue.delete_message(message)
                else:
                    queue.update_message(message, visibility_timeout=0)
                continue
            queue.delete_message(message)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end within {timeout:.0f} s")


def rejects(settings, run_id: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(runs.rejects_csv(settings, run_id).decode())))


def clean_segment(container, name: str, count: int, seed: int = 1):
    profiles = generate_profiles(count, seed=seed, bad_share=0.0, duplicate_share=0.0)
    write_plain_segment(container, name, profiles)
    return [profiles.expected(i).email for i in range(count)]


def test_rows_past_the_contact_limit_are_rejected_in_order(api_settings, export_of, segments_container, sandbox):
    emails = clean_segment(segments_container, "Vip", 250)
    export = export_of(["Vip"], contact_limit=120)

    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "partiallySucceeded"
    assert dataclasses.asdict(run.counts) == {"rows": 250, "sent": 120, "rejected": 130, "failed": 0}
    assert set(sandbox.contacts()) == set(emails[:120])
    listed = rejects(api_settings, run.run_id)
    assert [r["email"] for r in listed] == emails[120:]
    assert {r["reason"] for r in listed} == {"contact_limit"}


def test_a_worker_dying_after_sending_resends_nothing_and_counts_once(api_settings, export_of, segments_container,
                                                                     sandbox, monkeypatch):
    clean_segment(segments_container, "Vip", 300)
    export = export_of(["Vip"])
    record = runs._record_result
    died = []

    def die_once(*args, **kwargs):
        if not died:
            died.append(True)
            raise ConnectionError("worker killed before recording")
        return record(*args, **kwargs)

    monkeypatch.setattr(runs, "_record_result", die_once)
    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert died and run.status == "succeeded"
    assert dataclasses.asdict(run.counts) == {"rows": 300, "sent": 300, "rejected": 0, "failed": 0}
    assert len(sandbox.batches()) == 3  # the redelivered chunk resumed from its progress: no batch twice
    assert len(sandbox.contacts()) == 300


def test_a_poisoned_chunk_is_counted_as_failed_with_the_last_error(api_settings, export_of, segments_container,
                                                                   monkeypatch):
    clean_segment(segments_container, "Vip", 150)
    export = export_of(["Vip"])
    deliver = runs._deliver_chunk

    def second_chunk_always_fails(settings, store, run, message):
        if message["seq"] == 1:
            raise RuntimeError("disk on fire")
        deliver(settings, store, run, message)

    monkeypatch.setattr(runs, "_deliver_chunk", second_chunk_always_fails)
    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "partiallySucceeded"
    assert dataclasses.asdict(run.counts) == {"rows": 150, "sent": 100, "rejected": 0, "failed": 50}
    listed = rejects(api_settings, run.run_id)
    assert [int(r["row"]) for r in listed] == list(range(101, 151))
    assert {(r["reason"], r["detail"]) for r in listed} == {
        ("failed", "gave up after repeated errors: RuntimeError: disk on fire")}


def test_a_plan_that_always_fails_fails_the_run_with_its_error(api_settings, export_of, segments_container,
                                                              monkeypatch):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])

    def broken(*args, **kwargs):
        raise OSError("storage hiccup")

    monkeypatch.setattr(runs._Planner, "plan_segment", broken)
    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "failed"
    assert run.error == "planning failed on every attempt: OSError: storage hiccup"


def test_per_item_errors_and_stopped_batches_are_reported_per_email(api_settings, export_of, segments_container,
                                                                    sandbox):
    emails = clean_segment(segments_container, "Vip", 200)
    export = export_of(["Vip"])
    sandbox.set_faults(item_error_emails=emails[:3])

    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert dataclasses.asdict(run.counts) == {"rows": 200, "sent": 197, "rejected": 3, "failed": 0}
    listed = {r["email"]: r for r in rejects(api_settings, run.run_id)}
    assert set(listed) == set(emails[:3])
    assert all(r["reason"] == "omnisend_rejected" and r["detail"] for r in listed.values())
    assert set(sandbox.contacts()) == set(emails[3:])


def test_batches_stopped_every_time_end_as_failed_rows(api_settings, export_of, segments_container, sandbox):
    clean_segment(segments_container, "Vip", 100)
    export = export_of(["Vip"])
    sandbox.set_faults(stop_batch_rate=1.0)

    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert run.counts.rows == 100 and run.counts.failed + run.counts.sent == 100 and run.counts.failed > 0
    failed = [r for r in rejects(api_settings, run.run_id) if r["reason"] == "failed"]
    assert len(failed) == run.counts.failed and "stopped" in failed[0]["detail"]


def test_a_tag_only_row_whose_first_row_was_refused_is_not_counted_as_sent(api_settings, export_of,
                                                                          segments_container, sandbox):
    emails = clean_segment(segments_container, "Vip", 120, seed=5)
    clean_segment(segments_container, "Newsletter", 60, seed=5)  # the first 60 people of Vip again
    export = export_of(["Vip", "Newsletter"])
    sandbox.set_faults(item_error_emails=[emails[10]])

    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert dataclasses.asdict(run.counts) == {"rows": 180, "sent": 178, "rejected": 2, "failed": 0}
    contacts = sandbox.contacts()
    assert {e for e, c in contacts.items() if c["tags"] == ["Newsletter", "Vip"]} == set(emails[:60]) - {emails[10]}
    reasons = {(r["segment"], r["reason"]) for r in rejects(api_settings, run.run_id)}
    assert reasons == {("Vip", "omnisend_rejected"), ("Newsletter", "duplicate")}


def test_a_scheduled_run_is_skipped_while_one_is_in_progress(api_settings, export_of, segments_container):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    first = runs.start_run(api_settings, export, "manual")

    with pytest.raises(runs.RunInProgressError) as refused:
        runs.start_run(api_settings, export, "manual")
    skipped = runs.start_scheduled_runs(api_settings)

    assert refused.value.run_id == first.run_id
    assert [(r.status, r.trigger) for r in skipped] == [("skipped", "schedule")]
    assert first.run_id in skipped[0].error
    assert dataclasses.asdict(skipped[0].counts) == {"rows": 0, "sent": 0, "rejected": 0, "failed": 0}
    assert pump(api_settings, first.run_id).status == "succeeded"
    assert [r.run_id for r in runs.list_runs(api_settings, export.id)] == [skipped[0].run_id, first.run_id]


def test_a_missing_segment_fails_the_run_naming_it(api_settings, export_of, segments_container):
    export = export_of(["Nowhere"])
    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)
    assert run.status == "failed" and "Nowhere" in run.error


def test_an_omnisend_refusal_is_reported_on_the_row_that_was_sent(api_settings, export_of, segments_container,
                                                                  sandbox):
    header = "PrimaryEmail,FirstName,LastName,Address1,Country,State,City,PostCode\r\n"
    rows = ["ann@example.com,Ann,,,,,,", "bob@example.com,Bob,,,,,,", " ANN@example.com ,Ann,,,,,,"]
    segments_container.upload_blob("Vip.csv", (header + "\r\n".join(rows) + "\r\n").encode())
    export = export_of(["Vip"])
    sandbox.set_faults(item_error_emails=["ann@example.com"])

    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert dataclasses.asdict(run.counts) == {"rows": 3, "sent": 1, "rejected": 2, "failed": 0}
    assert [(r["row"], r["reason"]) for r in rejects(api_settings, run.run_id)] == [
        ("1", "omnisend_rejected"), ("3", "duplicate")]


def test_contacts_that_left_a_segment_lose_its_tag_and_keep_the_others(api_settings, export_of,
                                                                       segments_container, sandbox, omnisend_key):
    from tools.sample_export import ProfileSlice

    population = generate_profiles(140, seed=9, bad_share=0.0, duplicate_share=0.0)
    emails = [population.expected(i).email for i in range(140)]
    write_plain_segment(segments_container, "Vip", ProfileSlice(population, 0, 100))
    export = export_of(["Vip"])
    first = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)
    assert first.untagged == 0 and first.to_api()["untagged"] == 0
    from shared.omnisend import OmnisendClient

    with OmnisendClient(omnisend_key, base_url=sandbox.url) as client:
        client.add_tags(emails[:5], ["Loyal"])  # a tag of someone else's: never touched

    write_plain_segment(segments_container, "Vip", ProfileSlice(population, 40, 100))  # 40 left, 40 joined
    second = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert second.status == "succeeded" and second.untagged == 40
    contacts = sandbox.contacts()
    assert {e for e, c in contacts.items() if "Vip" in c["tags"]} == set(emails[40:140])
    assert set(contacts) == set(emails)  # leavers stay in Omnisend: there is no delete
    assert {e for e, c in contacts.items() if "Loyal" in c["tags"]} == set(emails[:5])


def test_a_segment_without_a_valid_email_removes_no_tag(api_settings, export_of, segments_container, sandbox):
    clean_segment(segments_container, "Vip", 30)
    export = export_of(["Vip"])
    pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)
    header = "PrimaryEmail,FirstName,LastName,Address1,Country,State,City,PostCode\r\n"
    segments_container.upload_blob("Vip.csv", (header + "not-an-email,Ann,,,,,,\r\n").encode(), overwrite=True)

    run = pump(api_settings, runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "partiallySucceeded" and run.untagged == 0
    assert sum("Vip" in c["tags"] for c in sandbox.contacts().values()) == 30
