"""Applying approved removals survives a crash anywhere (and a lost message): for each storage and queue call the approval step
makes, a failure injected once at that call, or the worker process dying right after it, still ends the
approval as the fault-free one ended: the same status and count, the same tags in Omnisend, the same sync
state (the held contacts no longer carry the tag), and the export's lock released.

Each case gets its own export, segments, state container, queue and Omnisend brand: a first run tags 100
contacts, a second run reads 40 of them gone and 40 new (28.6%, over the default gate of 20%) and holds the
removals; the approval is then applied under the probe. Real Azurite and the real sandbox underneath; the
pump redelivers as the Functions host does and runs the watchdog when the queue falls quiet.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared import documents, runs, storage, sync
from shared.runs import lock
from shared.runs.store import RunStore
from tests.runs.conftest import Pump
from tests.runs.faults import FaultPlan, fast_services, stored_export
from tests.runs.test_crash_matrix import EFFECTS
from tools.omnisend_sandbox import OmnisendSandbox
from tools.sample_export import ProfileSlice, generate_profiles, write_plain_segment

POPULATION = generate_profiles(140, seed=11, bad_share=0.0, duplicate_share=0.0)
EMAILS = [POPULATION.expected(i).email for i in range(140)]
ESSENTIAL = {
    "approve: write runs/<run>/progress/approve.json", "approve: read sync/<id>/state.bin",
    "approve: read runs/<run>/held/<n>.bin", "approve: write sync/<id>/state.bin",
    "approve: write runs/<run>/run.json", "approve: delete active-runs/<id>.json",
}


def scenarios(steps: list[str]) -> list[tuple[str, int, str]]:
    """(site, occurrence, mode): every write and delete of the step at each of its occurrences, failing
    before it or dying after it (the progress write after a removal call is the death right after that
    call); the reads of the state and of the held keys failing."""
    seen = Counter(steps)
    cases = []
    for where in dict.fromkeys(steps):
        if where.split(": ", 1)[1].split(" ", 1)[0] in EFFECTS:
            cases += [(where, n, mode) for n in range(1, seen[where] + 1) for mode in ("fail", "die")]
        elif where.endswith((".bin",)):
            cases.append((where, 1, "fail"))
    return cases


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: str
    removed: int
    tagged: frozenset  # emails carrying the tag in Omnisend
    carriers: frozenset  # emails carrying the tag in the export's sync state
    locked: bool  # the export's lock still held after a watchdog pass


class Approvals:
    def __init__(self, settings, sandbox: OmnisendSandbox) -> None:
        self.settings, self.sandbox = settings, sandbox

    def held_run(self):
        """(settings, export, run id) of a run that held the removals of 40 leavers, on fresh storage."""
        suffix = uuid.uuid4().hex[:12]
        brand = f"brand-{suffix}"
        settings = dataclasses.replace(self.settings, export_queue=f"approve-{suffix}",
                                       state_container=f"approve-{suffix}", segments_container=f"segs-{suffix}")
        container = storage.container(settings, settings.segments_container)
        container.create_container()
        export = self._export(settings, self.sandbox.add_key(brand))
        write_plain_segment(container, "Vip", ProfileSlice(POPULATION, 0, 100))
        Pump(settings).until_ended(runs.start_run(settings, export, "manual").run_id)
        write_plain_segment(container, "Vip", ProfileSlice(POPULATION, 40, 100))
        held = Pump(settings).until_ended(runs.start_run(settings, export, "manual").run_id)
        assert held.removals_held and held.untagged == 0, held
        return settings, export, held.run_id, brand

    def approve(self, probe: FaultPlan) -> Outcome:
        settings, export, run_id, brand = self.held_run()
        runs.approve_removals(settings, run_id, "ann@contoso.com")
        pump = Pump(settings, watchdog=True, probe=probe)
        run = pump.until_applied(run_id)
        pump.watch()
        store = RunStore(settings)
        state = sync.SyncStateStore(store.container).load(export.id).state
        bit = state.tag_bit("Vip")
        carriers = frozenset(state.emails_at([i for i, mask in enumerate(state.masks) if mask & bit]))
        tagged = frozenset(e for e, c in self.sandbox.contacts(brand).items() if "Vip" in c["tags"])
        approval = run.removals_approved
        return Outcome(approval.status.value, approval.removed, tagged, carriers,
                       lock.read(store, export.id) is not None)

    def _export(self, settings, api_key: str) -> documents.Export:
        return stored_export(settings, api_key, "gate", ["Vip"])


@pytest.fixture(scope="module")
def approvals(azurite, tmp_path_factory):
    settings, sandbox = fast_services(azurite, tmp_path_factory.mktemp("secrets"))
    yield Approvals(settings, sandbox)
    sandbox.stop()


def test_every_call_of_applying_an_approval_can_fail_once_or_die_and_it_still_ends_the_same(approvals):
    trace = FaultPlan(armed=False)
    expected = approvals.approve(trace)
    assert expected == Outcome("applied", 40, frozenset(EMAILS[40:]), frozenset(EMAILS[40:]), False)
    steps = [call for call in trace.calls if call.startswith("approve: ")]
    assert ESSENTIAL <= set(steps), sorted(ESSENTIAL - set(steps))
    cases = scenarios(steps)

    def one(case: tuple[str, int, str]) -> str | None:
        where, occurrence, mode = case
        probe = FaultPlan(target=where, occurrence=occurrence, mode=mode)
        try:
            outcome = approvals.approve(probe)
        except AssertionError as error:
            return f"{mode} at {where} #{occurrence}: {str(error)[:300]}"
        if probe.fired is None:
            return f"{mode} at {where} #{occurrence}: the call was not made"
        if outcome != expected:
            return (f"{mode} at {where} #{occurrence}: {outcome.status}, removed {outcome.removed}, "
                    f"{len(outcome.tagged ^ expected.tagged)} tags and {len(outcome.carriers ^ expected.carriers)} "
                    f"state bits differ, locked {outcome.locked}")
        return None

    with ThreadPoolExecutor(6) as pool:
        problems = [p for p in pool.map(one, cases) if p]

    assert len(cases) >= 14
    assert not problems, f"{len(problems)} of {len(cases)} faults changed the approval:\n" + "\n".join(problems)


def test_an_approval_whose_message_was_lost_is_sent_again_by_the_watchdog(approvals):
    settings, export, run_id, _ = approvals.held_run()
    runs.approve_removals(settings, run_id, "ann@contoso.com")
    storage.queue(settings, settings.export_queue).clear_messages()  # as if the process died before sending

    pump = Pump(settings, watchdog=True)
    run = pump.until_applied(run_id)

    assert run.removals_approved.status.value == "applied" and run.removals_approved.removed == 40
    assert pump.watchdog_passes >= 1 and lock.read(RunStore(settings), export.id) is None
