"""Plan parts (shared/runs/parts.py): first-wave chunks queued while the rest of the run is planned."""
from __future__ import annotations

import dataclasses

import pytest

from shared import runs
from shared.runs import parts
from shared.runs.errors import RunFailure
from shared.runs.model import Counts, PlannedChunk, PlanPart, Sends
from shared.segments import Chunk, CsvFormat
from tests.runs.conftest import counts
from tests.runs.faults import FaultPlan

# --- when chunks make a part, without storage


def planned(seq: int, rows: int = 100, upserts: int | None = None) -> PlannedChunk:
    chunk = Chunk("A", "A.csv", "0x1", seq * 10, seq * 10 + 10, seq * rows + 1, rows, ("E",), CsvFormat())
    if upserts == 0:
        return PlannedChunk(seq, 0, chunk, False, counted=Counts(rows=rows, unchanged=rows))
    return PlannedChunk(seq, 0, chunk, False, sends=Sends(rows if upserts is None else upserts, 0))


def test_the_first_part_comes_with_the_first_chunk_that_sends_later_ones_double():
    cutter = parts.PartCutter(tagging=False, min_rows=300)
    assert cutter.add(planned(0, upserts=0)) is None  # nothing to send yet: no part
    assert cutter.add(planned(1)) == ((planned(0, upserts=0), planned(1)), (0, 0))
    found = [cutter.add(planned(seq)) for seq in range(2, 12)]
    # 200 rows queued: the next part waits for 300 (the minimum), the one after for the 500 queued
    assert [(part[0][0].seq, part[0][-1].seq, part[1]) if part else None for part in found] == [
        None, None, (2, 4, (1, 0)), None, None, None, None, (5, 9, (4, 0)), None, None]


# --- planning with parts, against storage (the `parted_run` fixture: parts of chunks 0, 1-2 and 3-5 of ten)


def test_the_first_chunks_are_queued_before_the_plan_is_whole(api_settings, sandbox, parted_run):
    pump, run_id = parted_run.pump, parted_run.run_id
    at_plan_write = []

    class Look(FaultPlan):
        def before(self, op, target):
            super().before(op, target)
            if op == "write" and target.endswith("/plan.json"):
                run = runs.get_run(api_settings, run_id)
                at_plan_write.append((run.planned, run.early_chunks, pump.in_flight()))

    pump.probe = Look(armed=False)
    pump.deliver(parted_run.plan_message)

    assert at_plan_write == [(False, 6, 7)]  # the plan message is in flight too
    assert pump.in_flight() == 10  # each chunk once: the plan queued only those after the parts
    run = pump.until_ended(run_id)
    assert run.status == "succeeded" and counts(run) == {"rows": 1000, "sent": 1000, "rejected": 0, "failed": 0}
    assert set(sandbox.contacts()) == set(parted_run.emails)


@pytest.mark.parametrize("target, occurrence", [
    ("plan: write runs/<run>/parts/<n>.json", 2),  # the second part saved, not recorded on the run
    ("plan: write runs/<run>/run.json", 3),  # the second part recorded, its chunks not queued
    ("plan: send <queue>", 2),  # one chunk of the second part queued, the other not
])
def test_a_planner_dying_between_parts_is_finished_by_its_redelivery(sandbox, parted_run, target, occurrence):
    pump = parted_run.pump
    pump.probe = probe = FaultPlan(target=target, occurrence=occurrence, mode="die")
    pump.deliver(parted_run.plan_message)  # dies; the message is delivered again

    run = pump.until_ended(parted_run.run_id, timeout=30)

    assert probe.fired == target
    assert run.status == "succeeded" and counts(run) == {"rows": 1000, "sent": 1000, "rejected": 0, "failed": 0}
    assert sorted(run.chunks_done) == list(range(10))
    assert set(sandbox.contacts()) == set(parted_run.emails)


def test_another_planner_takes_over_after_the_parts_of_one_that_died(api_settings, sandbox, parted_run):
    """The watchdog's plan message has a delivery of its own: it plans again under the parts' token."""
    pump, run_id = parted_run.pump, parted_run.run_id
    pump.probe = FaultPlan(target="plan: send <queue>", occurrence=3, mode="die")  # in the second part
    pump.deliver(parted_run.plan_message)
    assert pump.probe.fired and not runs.get_run(api_settings, run_id).planned

    runs.process_message(api_settings, parted_run.plan_message.content, delivery="watchdog")  # plans the run
    assert runs.get_run(api_settings, run_id).planned
    pump.probe = None
    run = pump.until_ended(run_id)

    assert run.status == "succeeded" and counts(run) == {"rows": 1000, "sent": 1000, "rejected": 0, "failed": 0}
    assert run.early_chunks == 6 and sorted(run.chunks_done) == list(range(10))
    assert set(sandbox.contacts()) == set(parted_run.emails)


def test_a_part_that_planning_again_decides_differently_fails_the_run():
    saved = PlanPart("tok", "a", 0, (planned(0),), "incremental", ())
    writer = parts.PartWriter(None, "r", "tok", "b", "incremental", (), [saved], recorded=1)
    with pytest.raises(RunFailure, match="decided differently on chunks 0-0, which were queued already"):
        writer.write((dataclasses.replace(planned(0), sends=Sends(40, 0)),), (0, 0))
