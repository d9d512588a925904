"""Every run ends: the watchdog re-drives stalled runs and fails overdue ones (shared/runs/watchdog.py)."""
from __future__ import annotations

from datetime import timedelta

from shared import blobstate, runs, storage
from shared.runs import lock, worker
from shared.runs.store import RunStore
from tests.runs.conftest import Pump, clean_segment, counts
from tests.runs.faults import FaultPlan


def started_without_its_plan_message(settings, export) -> runs.Run:
    blobstate.install_probe(FaultPlan(target="send <queue>"))
    try:
        return runs.start_run(settings, export, "manual")
    finally:
        blobstate.install_probe(None)


def test_a_run_whose_plan_message_could_not_be_queued_is_started_by_the_watchdog(api_settings, export_of,
                                                                                segments_container):
    clean_segment(segments_container, "Vip", 150)
    run = started_without_its_plan_message(api_settings, export_of(["Vip"]))
    pump = Pump(api_settings, watchdog=True)
    assert run.status == "queued" and pump.receive() == []

    ended = pump.until_ended(run.run_id, timeout=30)

    assert ended.status == "succeeded" and counts(ended)["sent"] == 150
    assert pump.watchdog_passes >= 1


def test_a_run_whose_messages_were_lost_is_redriven(api_settings, export_of, segments_container, sandbox):
    emails = clean_segment(segments_container, "Vip", 250)
    run_id = runs.start_run(api_settings, export_of(["Vip"]), "manual").run_id
    pump = Pump(api_settings, watchdog=True)
    (plan,) = pump.receive()
    pump.deliver(plan)
    pump.queue.clear_messages()  # the three chunk messages are gone
    assert pump.watch(after=timedelta(minutes=5)).redriven == []  # not stalled yet

    run = pump.until_ended(run_id, timeout=30)

    assert run.status == "succeeded" and run.redrives == 1
    assert set(sandbox.contacts()) == set(emails)


def test_a_run_whose_planner_died_after_queueing_plan_parts_is_planned_again_and_its_chunks_sent(
        api_settings, sandbox, parted_run):
    """The first chunks were queued from plan parts, then the planner died and every message was lost:
    the watchdog sends the plan message and the parts' chunks again."""
    pump, run_id = parted_run.pump, parted_run.run_id
    pump.probe = FaultPlan(target="plan: write runs/<run>/parts/<n>.json", occurrence=3, mode="die")
    pump.deliver(parted_run.plan_message)
    pump.probe = None
    pump.queue.clear_messages()  # the plan message and the chunks of the first two parts are gone
    stalled = runs.get_run(api_settings, run_id)
    assert (stalled.planned, stalled.early_chunks, stalled.chunks_done) == (False, 3, [])

    assert pump.watch().redriven == [run_id]  # one pass: the plan message and chunks 0-2
    assert pump.in_flight() == 4
    run = pump.until_ended(run_id, timeout=30)

    assert run.status == "succeeded" and run.redrives == 1
    assert counts(run) == {"rows": 1000, "sent": 1000, "rejected": 0, "failed": 0}
    assert set(sandbox.contacts()) == set(parted_run.emails)


def test_a_chunk_whose_poison_handler_failed_is_redriven(api_settings, export_of, segments_container, monkeypatch):
    """A chunk failing five times, then its poison handler failing too, left the run running forever."""
    clean_segment(segments_container, "Vip", 150)
    run_id = runs.start_run(api_settings, export_of(["Vip"]), "manual").run_id
    map_rows, fail_chunk = worker._map, worker.fail_chunk
    failures = {"map": 0, "poison": 0}

    def flaky_second_chunk(settings, store, run, message, limit):
        if message.seq == 1 and failures["map"] < 5:
            failures["map"] += 1
            raise RuntimeError("disk on fire")
        return map_rows(settings, store, run, message, limit)

    def poison_handler_fails_once(*args):
        if not failures["poison"]:
            failures["poison"] += 1
            raise RuntimeError("poison handler down")
        return fail_chunk(*args)

    monkeypatch.setattr(worker, "_map", flaky_second_chunk)
    monkeypatch.setattr(worker, "fail_chunk", poison_handler_fails_once)

    run = Pump(api_settings, watchdog=True).until_ended(run_id, timeout=30)

    assert failures == {"map": 5, "poison": 1}
    assert run.status == "succeeded" and run.redrives == 1
    assert counts(run) == {"rows": 150, "sent": 150, "rejected": 0, "failed": 0}


def test_a_run_past_its_hours_fails_and_releases_its_export(api_settings, export_of, segments_container):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    run_id = runs.start_run(api_settings, export, "manual").run_id
    pump = Pump(api_settings)

    report = pump.watch(after=timedelta(hours=api_settings.run_max_hours, minutes=1))

    run = runs.get_run(api_settings, run_id)
    assert report.failed == [run_id] and run.status == "failed"
    assert run.error == ("the run did not finish within RUN_MAX_HOURS (6 h) and was stopped; "
                         "0 planned rows were not processed")
    assert runs.start_run(api_settings, export, "manual").status == "queued"


def test_the_watchdog_reads_the_locks_of_running_exports_only(api_settings, export_of, segments_container):
    clean_segment(segments_container, "Vip", 10)
    exports = [export_of(["Vip"]) for _ in range(3)]
    for export in exports[:2]:
        Pump(api_settings).until_ended(runs.start_run(api_settings, export, "manual").run_id)
    running = runs.start_run(api_settings, exports[2], "manual")
    calls = FaultPlan(armed=False)

    blobstate.install_probe(calls)
    try:
        report = runs.watch_runs(api_settings)
    finally:
        blobstate.install_probe(None)

    assert report.checked == 1 and not report.redriven
    assert [c for c in calls.calls if c.startswith("list")] == ["list active-runs/"]
    assert not [c for c in calls.calls if "run-index" in c]
    assert runs.get_run(api_settings, running.run_id).status == "queued"


def test_locks_left_behind_are_released_and_a_broken_one_stops_nothing(api_settings, export_of,
                                                                       segments_container):
    clean_segment(segments_container, "Vip", 10)
    ended, never_recorded, running = (export_of(["Vip"]) for _ in range(3))
    store = RunStore(api_settings)
    ended_run = Pump(api_settings).until_ended(runs.start_run(api_settings, ended, "manual").run_id)
    store.write_json(f"active-runs/{ended.id}.json", {"runId": ended_run.run_id, "claimedAt": ended_run.started_at})
    store.write_json(f"active-runs/{never_recorded.id}.json",
                     {"runId": "20260101T000000-deadbeef", "claimedAt": "2026-01-01T00:00:00.000Z"})
    storage.container(api_settings, api_settings.state_container).upload_blob("active-runs/broken.json", b"{")
    run_id = runs.start_run(api_settings, running, "manual").run_id
    pump = Pump(api_settings)
    pump.queue.clear_messages()  # its plan message is lost

    report = pump.watch()

    assert sorted(report.released) == sorted([ended.id, never_recorded.id])
    assert report.redriven == [run_id] and len(report.errors) == 1 and "broken" in report.errors[0]
    assert lock.read(store, ended.id) is None and lock.read(store, never_recorded.id) is None
    assert pump.until_ended(run_id).status == "succeeded"
