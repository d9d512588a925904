"""The crash matrix: for each storage and queue call a run makes on its plan, chunk and finish paths,
a failure injected once at that call, or the worker process dying right after it, still ends the
run exactly as the fault-free run ended (the finishing step's sync state write included): the same status and counts (rows = sent + rejected +
failed), and the same contacts, names and tags in Omnisend.

A fault-free run is traced first (every call as a site: the message being handled, the operation,
the blob name with ids masked). Then each site gets its own run on its own Omnisend brand and queue:
at the site's first call an error, and for writes, sends and deletes also the process's death right
after; the run document's writes and the queue sends, which a path makes several times, are also
hit at their last occurrence on that path (the finishing step). Real Azurite and the real sandbox underneath; the pump
redelivers as the Functions host does and runs the watchdog when the queue falls quiet.

The finishing step is also crashed on the next day, when it has work: with the first day's state in
place, some contacts leave each segment (and a marketer put a same-named tag on a contact the export
never tagged), so the step removes tags call by call, saving its progress after each, then replaces
the state. Every call it makes, at every occurrence, fails once or dies right after; the next day's
run must end with the same counts, the same contacts and tags in Omnisend, and the same sync state.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared import documents, runs, storage, sync
from tests.runs.conftest import Pump
from tests.runs.faults import FaultPlan, fast_services, stored_export
from tools.omnisend_sandbox import OmnisendSandbox
from tools.sample_export import (
    ProfileSlice, generate_profiles, overlapping_segments, write_plain_segment,
)

RUN_TIMEOUT = 300.0  # seconds: eight runs at once on a loaded machine are slow; a stuck run still fails
EFFECTS = ("write", "send", "delete")  # calls whose effect may land before the process dies
# Calls every run must make: if the trace misses one, the matrix would silently shrink.
ESSENTIAL = {
    "plan: write runs/<run>/plan.json", "plan: write runs/<run>/parts/<n>.json", "plan: write runs/<run>/run.json",
    "plan: send <queue>", "chunk: write runs/<run>/progress/<n>.json", "chunk: write runs/<run>/results/<n>.json",
    "chunk: write runs/<run>/rejects/<n>-<hex>.csv", "chunk: write runs/<run>/run.json", "chunk: send <queue>",
    "chunk: write runs/<run>/unsent-before-<n>.json", "untag: write runs/<run>/run.json",
    "untag: delete active-runs/<id>.json", "chunk: write runs/<run>/changes/<n>-<hex>.bin",
    "plan: read sync/<id>/state.bin", "untag: read sync/<id>/state.bin", "untag: write sync/<id>/state.bin",
    "chunk: read batch-boards/<id>.json", "chunk: write batch-boards/<id>.json",
}
# The finishing step's calls on a day when it removes tags: the two removal calls' progress included.
FINISH_ESSENTIAL = {
    "untag: read sync/<id>/state.bin", "untag: write runs/<run>/progress/untag-<n>.json",
    "untag: write sync/<id>/state.bin", "untag: write runs/<run>/run.json", "untag: delete active-runs/<id>.json",
}
HAND_TAGGED = "marketer.pick@example.com"  # tagged Vip by hand, never by the export: keeps it


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: str
    counts: dict
    contacts: dict  # email -> (first name, tags)
    untagged: int = 0
    state: tuple = ()  # the export's sync state: its tags, then (email, fingerprint, tag mask) per contact


class Matrix:
    """Runs of one small export (2 overlapping segments, some bad rows, 2 chunks each) on the sandbox."""

    def __init__(self, settings, sandbox: OmnisendSandbox, next_day: str) -> None:
        self.settings, self.sandbox = settings, sandbox
        self.next_day = next_day  # the segments container of the next day's export
        self.brands = 0

    def run(self, probe: FaultPlan, *, next_day: bool = False) -> Outcome:
        """A first run with `probe`; with `next_day`, a fault-free first run and the next day's with `probe`."""
        self.brands += 1
        brand = f"brand{self.brands}-{uuid.uuid4().hex[:6]}"
        suffix = uuid.uuid4().hex[:12]  # each run on its own state and queue: the watchdog sees it alone
        settings = dataclasses.replace(self.settings, export_queue=f"crash-{suffix}",
                                       state_container=f"crash-{suffix}")
        export = self._export(settings, self.sandbox.add_key(brand))
        if next_day:
            first = Pump(settings, watchdog=True).until_ended(runs.start_run(settings, export, "manual").run_id,
                                                              RUN_TIMEOUT)
            assert first.status.value == "partiallySucceeded", first  # some bad rows
            self.sandbox.tag_by_hand(HAND_TAGGED, add=["Vip"], brand_id=brand)
            settings = dataclasses.replace(settings, segments_container=self.next_day)
        run = Pump(settings, watchdog=True, probe=probe).until_ended(runs.start_run(settings, export, "manual").run_id,
                                                                     RUN_TIMEOUT)
        contacts = {email: (c.get("firstName", ""), tuple(c["tags"]))
                    for email, c in self.sandbox.contacts(brand).items()}
        stored = sync.SyncStateStore(storage.container(settings, settings.state_container)).load(export.id)
        state = (stored.state.tags, tuple(zip(stored.state.iter_emails(), stored.state.fingerprints,
                                              stored.state.masks))) if stored else ()
        return Outcome(run.status.value, run.counts.to_dict(), contacts, run.untagged, state)

    def _export(self, settings, api_key: str) -> documents.Export:
        return stored_export(settings, api_key, "crash", ["Vip", "News"])


@pytest.fixture(scope="module")
def matrix(azurite, tmp_path_factory):
    settings, sandbox = fast_services(azurite, tmp_path_factory.mktemp("secrets"))
    container = storage.container(settings, settings.segments_container)
    container.create_container()
    population = generate_profiles(250, seed=3, bad_share=0.03)
    for name, profiles in overlapping_segments(("Vip", "News"), population).items():  # Vip 0-149, News 100-249
        write_plain_segment(container, name, profiles)
    next_day = storage.container(settings, f"{settings.segments_container}-next")
    next_day.create_container()
    for name, profiles in {"Vip": ProfileSlice(population, 20, 150), "News": ProfileSlice(population, 100, 135)}.items():
        write_plain_segment(next_day, name, profiles)  # 20 leave Vip, 20 join it; 15 leave News
    yield Matrix(settings, sandbox, next_day.container_name)
    sandbox.stop()


def scenarios(calls: list[str]) -> list[tuple[str, int, str]]:
    """(site, occurrence, mode) for every site of a traced run."""
    seen = Counter(calls)
    found = []
    for where in dict.fromkeys(calls):  # in order of first call
        effect = where.split(": ", 1)[1].split(" ", 1)[0] in EFFECTS
        found.append((where, 1, "fail"))
        if effect:
            found.append((where, 1, "die"))
        if seen[where] > 1 and (where.endswith("/run.json") and " write " in f" {where}" or "send" in where):
            found += [(where, seen[where], "fail"), (where, seen[where], "die")]
    return found


def finish_cases(calls: list[str]) -> list[tuple[str, int, str]]:
    """(site, occurrence, mode) for every call of the finishing step, at every occurrence."""
    seen: Counter = Counter()
    found = []
    for where in calls:
        if not where.startswith("untag: "):
            continue
        seen[where] += 1
        found.append((where, seen[where], "fail"))
        if where.split(": ", 1)[1].split(" ", 1)[0] in EFFECTS:
            found.append((where, seen[where], "die"))
    return found


def run_cases(matrix: Matrix, expected: Outcome, cases: list[tuple[str, int, str]], **options) -> list[str]:
    """Each case on its own run(s); what went differently than `expected`."""

    def one(case: tuple[str, int, str]) -> str | None:
        site, occurrence, mode = case
        probe = FaultPlan(target=site, occurrence=occurrence, mode=mode)
        try:
            outcome = matrix.run(probe, **options)
        except AssertionError as error:  # the run did not end
            return f"{mode} at {site} #{occurrence}: {str(error)[:300]}"
        if probe.fired is None:
            # How often a chunk's message is sent again while its batches run depends on timing (the
            # batch board), so a later occurrence of a queue send may not come in every run.
            if occurrence > 1 and "send" in site:
                return None
            return f"{mode} at {site} #{occurrence}: the call was not made"
        if outcome != expected:
            counts = outcome.counts
            balanced = counts["rows"] == counts["sent"] + counts["unchanged"] + counts["rejected"] + counts["failed"]
            wrong = [e for e in expected.contacts.keys() | outcome.contacts.keys()
                     if expected.contacts.get(e) != outcome.contacts.get(e)]
            state = "the same" if outcome.state == expected.state else "different"
            return (f"{mode} at {site} #{occurrence}: {outcome.status} {counts} (balanced: {balanced}), "
                    f"untagged {outcome.untagged}; {len(wrong)} contacts differ, e.g. {wrong[:3]}; sync state {state}")
        return None

    with ThreadPoolExecutor(8) as pool:
        return [p for p in pool.map(one, cases) if p]


def test_every_call_of_a_run_can_fail_once_or_die_and_the_run_still_ends_the_same(matrix):
    trace = FaultPlan(armed=False)
    expected = matrix.run(trace)
    violations = matrix.sandbox.contract_violations()  # of the fault-free run (the others send the same)
    assert not violations, violations[:10]
    assert expected.status == "partiallySucceeded" and expected.counts["failed"] == 0
    assert expected.counts["rows"] == expected.counts["sent"] + expected.counts["rejected"]
    assert ESSENTIAL <= set(trace.calls), sorted(ESSENTIAL - set(trace.calls))
    cases = scenarios(trace.calls)

    problems = run_cases(matrix, expected, cases)

    assert len(cases) > 60
    assert not problems, f"{len(problems)} of {len(cases)} faults changed the run:\n" + "\n".join(problems)


def test_every_call_of_the_next_days_finish_can_fail_once_or_die_and_the_state_ends_the_same(matrix):
    trace = FaultPlan(armed=False)
    expected = matrix.run(trace, next_day=True)
    assert expected.status == "partiallySucceeded" and expected.untagged > 0
    contacts = expected.contacts
    assert contacts[HAND_TAGGED][1] == ("Vip",)
    tagged = {email for email, (_, tags) in contacts.items() if tags and email != HAND_TAGGED}
    assert len(expected.state[1]) == len(tagged) and set(expected.state[0]) == {"Vip", "News"}
    finish = [where for where in trace.calls if where.startswith("untag: ")]
    assert FINISH_ESSENTIAL <= set(finish), sorted(FINISH_ESSENTIAL - set(finish))
    cases = finish_cases(trace.calls)

    problems = run_cases(matrix, expected, cases, next_day=True)

    assert not problems, f"{len(problems)} of {len(cases)} faults changed the finish:\n" + "\n".join(problems)
