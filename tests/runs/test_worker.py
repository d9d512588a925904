"""Chunk delivery (shared/runs/worker.py, delivery.py) against Azurite and the Omnisend sandbox."""
from __future__ import annotations

import pytest

from shared import runs, telemetry
from shared.runs import messages, paths, worker
from shared.runs.store import RunStore
from tests.runs.conftest import Pump, clean_segment, counts, read_rejects
from tests.runs.faults import FaultPlan


def test_rows_past_the_contact_limit_are_rejected_in_order(api_settings, export_of, segments_container, sandbox,
                                                           pump):
    emails = clean_segment(segments_container, "Vip", 250)
    export = export_of(["Vip"], contact_limit=120)

    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "partiallySucceeded"
    assert counts(run) == {"rows": 250, "sent": 120, "rejected": 130, "failed": 0}
    assert set(sandbox.contacts()) == set(emails[:120])
    listed = read_rejects(api_settings, run.run_id)
    assert [r["email"] for r in listed] == emails[120:]
    assert {r["reason"] for r in listed} == {"contact_limit"}


def test_a_worker_failing_before_its_result_resends_nothing_and_counts_once(api_settings, export_of,
                                                                            segments_container, sandbox, pump):
    clean_segment(segments_container, "Vip", 300)
    export = export_of(["Vip"])
    probe = FaultPlan(target="chunk: write runs/<run>/results/<n>.json")

    run = pump(runs.start_run(api_settings, export, "manual").run_id, probe=probe)

    assert probe.fired and run.status == "succeeded"
    assert counts(run) == {"rows": 300, "sent": 300, "rejected": 0, "failed": 0}
    assert len(sandbox.batches()) == 3  # the redelivered chunk resumed from its progress: no batch twice
    assert len(sandbox.contacts()) == 300


def test_a_poisoned_chunk_is_counted_as_failed_with_the_last_error(api_settings, export_of, segments_container,
                                                                   monkeypatch, pump):
    clean_segment(segments_container, "Vip", 150)
    export = export_of(["Vip"])
    map_rows = worker._map

    def second_chunk_always_fails(settings, store, run, message, limit):
        if message.seq == 1:
            raise RuntimeError("disk on fire")
        return map_rows(settings, store, run, message, limit)

    monkeypatch.setattr(worker, "_map", second_chunk_always_fails)
    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "partiallySucceeded"
    assert counts(run) == {"rows": 150, "sent": 100, "rejected": 0, "failed": 50}
    listed = read_rejects(api_settings, run.run_id)
    assert [int(r["row"]) for r in listed] == list(range(101, 151))
    assert {(r["reason"], r["detail"]) for r in listed} == {
        ("failed", "gave up after repeated errors: RuntimeError: disk on fire")}


def test_per_item_errors_are_reported_per_email(api_settings, export_of, segments_container, sandbox, pump):
    emails = clean_segment(segments_container, "Vip", 200)
    export = export_of(["Vip"])
    sandbox.set_faults(item_error_emails=emails[:3])

    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert counts(run) == {"rows": 200, "sent": 197, "rejected": 3, "failed": 0}
    listed = {r["email"]: r for r in read_rejects(api_settings, run.run_id)}
    assert set(listed) == set(emails[:3])
    assert all(r["reason"] == "omnisend_rejected" and r["detail"] for r in listed.values())
    assert set(sandbox.contacts()) == set(emails[3:])


def test_batches_stopped_every_time_end_as_failed_rows(api_settings, export_of, segments_container, sandbox, pump):
    clean_segment(segments_container, "Vip", 100)
    export = export_of(["Vip"])
    sandbox.set_faults(stop_batch_rate=1.0)

    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.counts.rows == 100 and run.counts.failed + run.counts.sent == 100 and run.counts.failed > 0
    failed = [r for r in read_rejects(api_settings, run.run_id) if r["reason"] == "failed"]
    assert len(failed) == run.counts.failed and "stopped" in failed[0]["detail"]


def test_a_tag_only_row_whose_first_row_was_refused_is_not_counted_as_sent(api_settings, export_of,
                                                                          segments_container, sandbox, pump):
    emails = clean_segment(segments_container, "Vip", 120, seed=5)
    clean_segment(segments_container, "Newsletter", 60, seed=5)  # the first 60 people of Vip again
    export = export_of(["Vip", "Newsletter"])
    sandbox.set_faults(item_error_emails=[emails[10]])

    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert counts(run) == {"rows": 180, "sent": 178, "rejected": 2, "failed": 0}
    contacts = sandbox.contacts()
    assert {e for e, c in contacts.items() if c["tags"] == ["Newsletter", "Vip"]} == set(emails[:60]) - {emails[10]}
    reasons = {(r["segment"], r["reason"]) for r in read_rejects(api_settings, run.run_id)}
    assert reasons == {("Vip", "omnisend_rejected"), ("Newsletter", "duplicate")}


def test_an_omnisend_refusal_is_reported_on_the_row_that_was_sent(api_settings, export_of, segments_container,
                                                                  sandbox, pump):
    header = "PrimaryEmail,FirstName,LastName,Address1,Country,State,City,PostCode\r\n"
    rows = ["ann@example.com,Ann,,,,,,", "bob@example.com,Bob,,,,,,", " ANN@example.com ,Ann,,,,,,"]
    segments_container.upload_blob("Vip.csv", (header + "\r\n".join(rows) + "\r\n").encode())
    export = export_of(["Vip"])
    sandbox.set_faults(item_error_emails=["ann@example.com"])

    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert counts(run) == {"rows": 3, "sent": 1, "rejected": 2, "failed": 0}
    assert [(r["row"], r["reason"]) for r in read_rejects(api_settings, run.run_id)] == [
        ("1", "omnisend_rejected"), ("3", "duplicate")]


def plan_only(settings, run_id: str) -> list:
    """Deliver the plan message alone; returns the chunk messages it queued (still in the queue)."""
    pump = Pump(settings)
    (message,) = pump.receive()
    pump.deliver(message)
    return [m for m in pump.queue.peek_messages(max_messages=32)]


def test_a_chunk_deferred_past_the_limit_fails_its_rows_with_the_last_reason(api_settings, export_of,
                                                                           segments_container, sandbox,
                                                                           monkeypatch, pump):
    """A deferred chunk used to go back to the queue as a new message forever (its dequeue count
    started again each time): now its attempts are counted, and past the limit its rows fail."""
    clean_segment(segments_container, "Vip", 100)
    export = export_of(["Vip"], tag_contacts=False)
    run_id = runs.start_run(api_settings, export, "manual").run_id
    assert len(plan_only(api_settings, run_id)) == 1
    monkeypatch.setattr(messages, "MAX_DEFERRALS", 2)
    sandbox.set_faults(rate_limit_storm=10_000)  # Omnisend answers 429 to everything from now on

    run = pump(run_id, timeout=30)

    assert run.status == "partiallySucceeded"
    assert counts(run) == {"rows": 100, "sent": 0, "rejected": 0, "failed": 100}
    assert run.rate_limited == 3  # the first attempt and two deferred ones met a 429
    details = {r["detail"] for r in read_rejects(api_settings, run_id)}
    assert len(details) == 1 and details.pop().startswith("gave up after 2 deferrals: Omnisend rate limit")


def test_a_plan_deferred_past_the_limit_fails_the_run(api_settings, export_of, segments_container, sandbox,
                                                      monkeypatch, pump):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    monkeypatch.setattr(messages, "MAX_DEFERRALS", 1)
    sandbox.set_faults(rate_limit_storm=10_000)

    run = pump(runs.start_run(api_settings, export, "manual").run_id, timeout=30)

    assert run.status == "failed" and run.error.startswith("planning gave up waiting for Omnisend's rate limit")
    assert run.rate_limited == 1


def test_rate_limited_deferrals_are_counted_on_the_run_but_not_shown(api_settings, export_of, segments_container,
                                                                     sandbox, pump):
    clean_segment(segments_container, "Vip", 100)
    export = export_of(["Vip"])
    run_id = runs.start_run(api_settings, export, "manual").run_id
    plan_only(api_settings, run_id)
    sandbox.set_faults(rate_limit_storm=2)

    run = pump(run_id, timeout=30)

    assert run.status == "succeeded" and run.rate_limited == 2
    assert "rateLimited" not in run.to_api() and "rate_limited" not in run.to_api()


def test_a_duplicated_chunk_message_is_sent_by_one_delivery_only(api_settings, export_of, segments_container,
                                                                sandbox):
    """Two deliveries of one chunk at the same time used to create its batches twice; now the second
    finds the chunk claimed and waits, then finds its result."""
    clean_segment(segments_container, "Vip", 100)
    export = export_of(["Vip"])
    run_id = runs.start_run(api_settings, export, "manual").run_id
    (chunk_message,) = plan_only(api_settings, run_id)
    second_started = []

    class SecondDeliveryMidway(FaultPlan):
        def after(self, op, target):
            super().after(op, target)
            if not second_started and op == "write" and "/progress/0.json" in target:
                second_started.append("b")  # the first delivery holds the chunk and has saved its progress
                runs.process_message(api_settings, chunk_message.content, delivery="b")

    pump = Pump(api_settings, probe=SecondDeliveryMidway(armed=False))
    run = pump.until_ended(run_id, timeout=30)

    assert second_started and run.status == "succeeded"
    assert counts(run) == {"rows": 100, "sent": 100, "rejected": 0, "failed": 0}
    assert len(sandbox.batches()) == 1
    # The duplicate went back to the queue, to look again once the claim may have expired.
    assert pump.queue.get_queue_properties().approximate_message_count == 1


def test_an_invalid_email_is_in_the_rejects_file_as_written_and_neutralised(api_settings, export_of,
                                                                             segments_container, pump):
    """The rejects file used to leave the email column empty for invalid emails; and a valid-looking
    address may start with a formula character, which a spreadsheet would run."""
    emails = clean_segment(segments_container, "Vip", 3)
    header = "PrimaryEmail,FirstName,LastName,Address1,Country,State,City,PostCode\r\n"
    rows = [f"{emails[0]},Ann,,,,,,\r\n", "=2+5@not valid,Bob,,,,,,\r\n", f"{emails[1]},Cid,,,,,,\r\n"]
    segments_container.upload_blob("Vip.csv", header + "".join(rows), overwrite=True)

    run = pump(runs.start_run(api_settings, export_of(["Vip"]), "manual").run_id)

    assert counts(run) == {"rows": 3, "sent": 2, "rejected": 1, "failed": 0}
    (reject,) = read_rejects(api_settings, run.run_id)
    assert (reject["row"], reject["reason"], reject["email"]) == ("2", "invalid_email", "'=2+5@not valid")


def test_a_finished_run_sends_one_telemetry_event_without_emails(api_settings, export_of, segments_container, pump,
                                                                  caplog):
    emails = clean_segment(segments_container, "Vip", 5)
    export = export_of(["Vip"])
    with caplog.at_level("INFO", logger=telemetry.EVENT_LOGGER):
        run = pump(runs.start_run(api_settings, export, "manual").run_id)

    events = [r for r in caplog.records if getattr(r, "exportId", None) == export.id]
    assert len(events) == 1
    event = events[0]
    assert (event.runId, event.status, event.trigger, event.rows, event.sent) == (run.run_id, "succeeded", "manual", 5, 5)
    assert not any(email in event.getMessage() for email in emails)


@pytest.mark.sandbox(batch_step_seconds=0.5)
def test_a_chunk_ends_while_its_batches_run_and_comes_back_to_settle_them(api_settings, export_of,
                                                                          segments_container, sandbox):
    clean_segment(segments_container, "Vip", 100)
    export = export_of(["Vip"], tag_contacts=False)
    run_id = runs.start_run(api_settings, export, "manual").run_id
    assert len(plan_only(api_settings, run_id)) == 1
    pump = Pump(api_settings)
    (message,) = pump.receive()

    pump.deliver(message)  # the chunk creates its batch and ends: no sleeping on Omnisend

    (batch,) = sandbox.batches().values()
    assert batch["status"] != "finished" and not pump.queue.peek_messages()  # back after a visibility delay
    progress = RunStore(api_settings).read_json(paths.progress(run_id, 0))[0]["state"]
    assert progress["batches"][0]["batch_id"] == batch["batchID"]
    assert not progress["batches"][0]["verified"] and progress["waitingSince"]
    run = pump.until_ended(run_id, timeout=30)
    assert run.status == "succeeded" and counts(run)["sent"] == 100
    reads = [r for r in sandbox.request_log() if r.method == "GET" and r.path.startswith("/batches")]
    assert {r.path for r in reads} == {"/batches"}  # list pages only: no per-batch status reads


@pytest.mark.sandbox(batch_step_seconds=30.0)
def test_a_chunk_whose_batches_never_finish_fails_its_rows_after_its_waiting_time(api_settings, export_of,
                                                                               segments_container, monkeypatch,
                                                                               pump):
    clean_segment(segments_container, "Vip", 100)
    export = export_of(["Vip"], tag_contacts=False)
    monkeypatch.setattr(messages, "MAX_BATCH_WAIT_SECONDS", 2.0)

    run = pump(runs.start_run(api_settings, export, "manual").run_id, timeout=30)

    assert run.status == "partiallySucceeded"
    assert counts(run) == {"rows": 100, "sent": 0, "rejected": 0, "failed": 100}
    details = {r["detail"] for r in read_rejects(api_settings, run.run_id)}
    assert len(details) == 1 and details.pop().startswith("gave up after waiting")
