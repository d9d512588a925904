"""The finisher's decisions without storage: what a step makes due, when a run ends, and what the
watchdog does with a run (shared/runs/finisher.py)."""
from __future__ import annotations

import dataclasses

from datetime import datetime, timedelta, timezone

import pytest

from shared.blobstate import utc_text
from shared.runs import finisher
from shared.runs.finisher import Verdict, WatchPolicy
from shared.runs.model import (Approval, ApprovalStatus, Counts, Due, ExportSnapshot, HeldRemoval, Plan, PlannedChunk, PlanPart, Run,
                               RunStatus, StepKind, Trigger)
from shared.segments import Chunk, CsvFormat

NOW = "2026-01-01T01:00:00.000Z"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def a_run(tag_contacts: bool = True, **changes) -> Run:
    values = dict(run_id="r", export_id="e", trigger=Trigger.MANUAL, status=RunStatus.RUNNING,
                  export=ExportSnapshot("c", ("A", "B"), {"email": "E"}, tag_contacts),
                  started_at=utc_text(START), updated_at=utc_text(START))
    return Run(**{**values, **changes})


def a_plan(*sizes: int, sequential: bool) -> Plan:
    chunk = Chunk("A", "A.csv", "0x1", 0, 10, 1, 10, ("E",), CsvFormat())
    waves, seq = [], 0
    for wave, size in enumerate(sizes):
        waves.append(tuple(PlannedChunk(seq + i, wave, chunk, False) for i in range(size)))
        seq += size
    return Plan("tok", "me", tuple("AB"[: len(sizes)]), 10 * seq, sequential, tuple(waves))


def counted(run: Run, *seqs: int) -> None:
    for seq in seqs:
        finisher.count(run, seq, Counts(10, 10, 0, 0), 0)
        finisher.advance(run, "me", NOW)


def test_a_sequential_plan_opens_one_wave_at_a_time_then_finishes_then_ends():
    run = a_run()
    finisher.record_plan(run, a_plan(2, 1, sequential=True), "me", NOW)
    assert (run.waves_opened, run.outbox) == (1, [Due(StepKind.WAVE, 0, 1, "me", NOW)])

    counted(run, 0)
    assert run.waves_opened == 1  # chunk 1 of the first wave is not counted yet
    counted(run, 1)
    assert run.waves_opened == 2 and run.outbox[-1] == Due(StepKind.WAVE, 1, 2, "me", NOW)
    counted(run, 2)
    assert run.untag_pending == [0] and run.outbox[-1] == Due(StepKind.UNTAG, 0, 1, "me", NOW)
    assert not run.terminal

    finisher.untag_done(run, 0, 7, None)
    finisher.advance(run, "me", NOW)
    assert (run.status, run.untagged, run.finished_at, run.outbox) == (RunStatus.SUCCEEDED, 7, NOW, [])


def test_a_chunk_with_nothing_to_send_is_counted_when_planned_and_never_opened():
    run = a_run()
    plan = a_plan(2, sequential=False)
    skipped = dataclasses.replace(plan.waves[0][1], counted=Counts(rows=5, unchanged=5))
    plan = dataclasses.replace(plan, waves=((plan.waves[0][0], skipped),))
    finisher.record_plan(run, plan, "me", NOW)
    assert run.chunks_done == [1] and run.counts == Counts(rows=5, unchanged=5)
    assert finisher.missing(run) == finisher.Missing(chunks=(0,))


def test_a_plan_without_tag_only_rows_opens_every_wave_at_once():
    run = a_run(tag_contacts=False)
    finisher.record_plan(run, a_plan(2, 1, sequential=False), "me", NOW)
    assert run.waves_opened == 2 and run.outbox == [Due(StepKind.WAVE, 0, 2, "me", NOW)]
    counted(run, 2, 0, 1)
    assert run.untag_pending == [0]  # the finishing step replaces the sync state, tags or not


def test_an_empty_plan_goes_straight_to_the_finishing_step():
    run = a_run(tag_contacts=False)
    finisher.record_plan(run, a_plan(sequential=False), "me", NOW)
    assert run.outbox == [Due(StepKind.UNTAG, 0, 1, "me", NOW)]


def test_plan_parts_queue_first_wave_chunks_and_nothing_opens_or_ends_before_the_whole_plan():
    run = a_run(tag_contacts=False)
    plan = a_plan(4, 1, sequential=False)
    skipped = dataclasses.replace(plan.waves[0][1], counted=Counts(rows=10, unchanged=10))
    first = PlanPart("tok", "me", 0, (plan.waves[0][0], skipped), "incremental", ("A",))
    finisher.record_part(run, first, "me", NOW)
    assert (run.early_chunks, run.early_at, run.sync_tags) == (2, NOW, ["A"])
    assert run.outbox == [Due(StepKind.PART, 0, 1, "me", NOW)] and run.chunks_done == [1]
    assert list(run.opened_chunks) == [0, 1] and not run.planned
    assert finisher.missing(run) == finisher.Missing(plan=True, chunks=(0,))

    finisher.record_part(run, first, "me", NOW)  # recorded again (a redelivery): no change
    finisher.record_part(run, PlanPart("tok", "me", 2, plan.waves[0][3:], "incremental", ()), "me", NOW)  # not next
    assert run.early_chunks == 2 and len(run.outbox) == 1

    counted(run, 0)  # every queued chunk counted before the plan is whole: nothing opens, the run goes on
    assert (run.untag_pending, run.status) == (None, RunStatus.RUNNING)

    run.outbox = []
    finisher.record_plan(run, dataclasses.replace(plan, waves=((plan.waves[0][0], skipped, *plan.waves[0][2:]),
                                                               plan.waves[1])), "me", NOW)
    assert run.outbox == [Due(StepKind.WAVE, 0, 2, "me", NOW)]  # the outbox leaves the parts' chunks out
    assert finisher.missing(run).chunks == (2, 3, 4)
    counted(run, 2, 3, 4)
    assert run.untag_pending == [0]
    finisher.record_part(run, PlanPart("tok", "me", 1, plan.waves[0][2:3], "incremental", ()), "me", NOW)
    assert run.early_chunks == 2  # a part after the plan was recorded changes nothing


def test_a_waiting_chunk_looks_again_within_a_second_in_the_runs_tail_only():
    tail = finisher.TAIL_CHUNKS
    run = a_run(tag_contacts=False)
    finisher.record_plan(run, a_plan(tail + 4, 3, sequential=True), "me", NOW)
    counted(run, *range(tail + 2))
    assert finisher.look_again(run, 4.0) == 4.0  # 2 chunks left in this wave, but a later one is to open
    assert not finisher.in_tail(run)
    counted(run, tail + 2, tail + 3)
    assert run.waves_opened == 2 and finisher.look_again(run, 4.0) == 1.0  # 3 chunks left, the last wave
    assert finisher.in_tail(run)
    assert finisher.look_again(run, 0.5) == 0.5  # never later than the board asks

    run = a_run(tag_contacts=False)
    finisher.record_plan(run, a_plan(tail + 5, sequential=False), "me", NOW)
    counted(run, *range(4))
    assert finisher.look_again(run, 4.0) == 4.0  # one chunk more than the tail left
    assert not finisher.in_tail(run)
    counted(run, 4)
    assert finisher.in_tail(run)
    assert finisher.look_again(run, 4.0) == finisher.TAIL_WAIT_SECONDS


def test_a_result_is_counted_once():
    run = a_run()
    finisher.count(run, 3, Counts(10, 8, 2, 0), 1)
    finisher.count(run, 3, Counts(10, 8, 2, 0), 1)
    assert (run.counts, run.chunks_done, run.rate_limited) == (Counts(10, 8, 2, 0), [3], 1)


def test_rejects_failures_or_an_untag_error_make_a_partial_success():
    run = a_run()
    finisher.record_plan(run, a_plan(1, sequential=False), "me", NOW)
    finisher.count(run, 0, Counts(10, 10, 0, 0), 0)
    finisher.advance(run, "me", NOW)
    finisher.untag_done(run, 0, 0, "removing the tag from leavers failed: boom")
    finisher.advance(run, "me", NOW)
    assert run.status is RunStatus.PARTIALLY_SUCCEEDED and run.error.endswith("boom")


def test_an_ended_run_stays_as_it_ended():
    run = a_run()
    finisher.end(run, RunStatus.CANCELLED, "cancelled", NOW)
    finisher.end(run, RunStatus.FAILED, "late failure", NOW)
    assert (run.status, run.error) == (RunStatus.CANCELLED, "cancelled")


# --- the watchdog's verdicts

POLICY = WatchPolicy(stall=timedelta(minutes=30), max_run=timedelta(hours=6))


@pytest.mark.parametrize("minutes_later, quiet_minutes, outbox_age, verdict", [
    (10, 10, None, Verdict.NONE),
    (40, 29, None, Verdict.NONE),
    (40, 31, None, Verdict.REDRIVE),
    (10, 1, 3, Verdict.FLUSH),
    (10, 1, 1, Verdict.NONE),
    (6 * 60, 1, None, Verdict.FAIL),
])
def test_the_watchdog_verdicts(minutes_later, quiet_minutes, outbox_age, verdict):
    now = START + timedelta(minutes=minutes_later)
    outbox = [] if outbox_age is None else [Due(StepKind.WAVE, 0, 1, "me", utc_text(now - timedelta(minutes=outbox_age)))]
    run = a_run(outbox=outbox)
    assert finisher.judge(run, now, now - timedelta(minutes=quiet_minutes), POLICY) is verdict


def test_an_ended_run_needs_nothing():
    run = a_run(status=RunStatus.FAILED)
    assert finisher.judge(run, START + timedelta(days=1), START, POLICY) is Verdict.NONE
    assert finisher.missing(run).nothing


def test_what_a_stalled_run_misses():
    assert finisher.missing(a_run()) == finisher.Missing(plan=True)
    run = a_run()
    finisher.record_plan(run, a_plan(2, 2, sequential=True), "me", NOW)
    counted(run, 1)
    assert finisher.missing(run) == finisher.Missing(chunks=(0,))
    counted(run, 0, 2, 3)
    assert finisher.missing(run) == finisher.Missing(untag_waves=(0,))


# --------------------------------------------------------------------------- held removals and their approval

HELD = HeldRemoval("A", 40, 100, 100, 28.57, "40 of the 140 contacts tagged 'A' left its segment")


def a_held_run(**changes) -> Run:
    run = a_run()
    finisher.record_plan(run, a_plan(1, sequential=False), "me", NOW)
    counted(run, 0)
    finisher.untag_done(run, 0, 3, None, [HELD])
    finisher.advance(run, "me", NOW)
    for name, value in changes.items():
        setattr(run, name, value)
    return run


def test_held_removals_end_the_run_partially_succeeded_with_them_and_no_error():
    run = a_held_run()
    assert (run.status, run.untagged, run.error, run.removals_held) == (RunStatus.PARTIALLY_SUCCEEDED, 3, None, [HELD])
    view = run.to_api()
    assert view["removalsHeld"]["tags"] == [HELD.to_api()] and view["removalsHeld"]["maxRemovalPercent"] == 20
    assert view["removalsHeld"]["reason"].startswith("tag removals over maxRemovalPercent (20%) are held")
    assert Run.from_dict(run.to_dict()) == run


def test_what_an_approval_is_refused_for():
    assert finisher.approval_refusal(a_run()).code == "no_removals_held"  # still running
    assert "not ended" in finisher.approval_refusal(a_run()).detail
    done = a_run(status=RunStatus.SUCCEEDED)
    assert finisher.approval_refusal(done).code == "no_removals_held"
    held = a_held_run()
    assert finisher.approval_refusal(held) is None
    assert finisher.state_refusal(held, "r") is None
    assert finisher.state_refusal(held, "later").code == "sync_state_replaced"
    assert finisher.state_refusal(held, None).code == "sync_state_replaced"
    busy = finisher.active_refusal(held, "later")
    assert (busy.code, busy.active_run) == ("run_in_progress", "later")


def test_an_approval_is_recorded_once_applied_or_failed_and_a_failed_one_may_be_repeated():
    run = a_held_run()
    assert finisher.approve(run, "ann", NOW) is None
    assert run.applying_removals and run.removals_approved == Approval("ann", NOW)
    assert finisher.approve(run, "bob", NOW).code == "removals_already_approved"

    finisher.approval_done(run, 0, "Omnisend refused the key", NOW)
    assert run.removals_approved.status is ApprovalStatus.FAILED and not run.applying_removals
    assert finisher.approve(run, "bob", "later") is None and run.removals_approved.by == "bob"
    finisher.approval_done(run, 40, None, "end")
    finisher.approval_done(run, 99, "too late", "end")  # only an approval being applied ends
    assert run.to_api()["removalsApproved"] == {"by": "bob", "at": "later", "status": "applied", "removed": 40,
                                               "finishedAt": "end"}
    assert finisher.approve(run, "cy", NOW).code == "removals_already_approved"
    assert Run.from_dict(run.to_dict()) == run


def test_a_refused_approval_is_withdrawn_leaving_an_earlier_failed_one_as_it_was():
    run = a_held_run()
    finisher.approve(run, "ann", NOW)
    finisher.approval_done(run, 0, "failed", NOW)
    failed = run.removals_approved
    finisher.approve(run, "bob", "later")
    finisher.withdraw(run, run.removals_approved, failed)
    assert run.removals_approved == failed


@pytest.mark.parametrize("approved_minutes_ago, quiet_minutes, verdict", [
    (5, 1, Verdict.NONE), (20, 16, Verdict.REDRIVE), (24 * 60 + 1, 1, Verdict.FAIL)])
def test_the_watchdog_on_an_approval_being_applied(approved_minutes_ago, quiet_minutes, verdict):
    now = START + timedelta(days=3)
    run = a_held_run()
    finisher.approve(run, "ann", utc_text(now - timedelta(minutes=approved_minutes_ago)))
    policy = WatchPolicy(stall=timedelta(minutes=15), max_run=timedelta(hours=24))
    assert finisher.approval_verdict(run, now, now - timedelta(minutes=quiet_minutes), policy) is verdict
    finisher.approval_done(run, 0, None, NOW)
    assert finisher.approval_verdict(run, now, now - timedelta(days=2), policy) is Verdict.NONE
def test_a_preview_plan_ends_the_run_at_once_with_its_chunks_counted_and_nothing_queued():
    run = a_run()
    chunk = Chunk("A", "A.csv", "0x1", 0, 10, 1, 10, ("E",), CsvFormat())
    waves = ((PlannedChunk(0, 0, chunk, False, Counts(10, rejected=1, unchanged=9)),),
             (PlannedChunk(1, 1, chunk, False, Counts(10, unchanged=10)),))
    finisher.record_plan(run, Plan("tok", "me", ("A", "B"), 20, True, waves, "preview"), "me", NOW)

    assert (run.status, run.mode, run.finished_at, run.outbox) == (RunStatus.SUCCEEDED, "preview", NOW, [])
    assert run.counts == Counts(20, rejected=1, unchanged=19) and run.untag_pending == []  # no finishing step
    assert finisher.missing(run).nothing
