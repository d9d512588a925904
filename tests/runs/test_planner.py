"""Planning (shared/runs/planner.py): the row decisions without storage, idempotent planning with it."""
from __future__ import annotations

import pytest

from shared import runs, sync
from shared.runs import planner
from shared.runs.model import Note
from tests.runs.conftest import Pump, clean_segment, counts
from tests.runs.faults import FaultPlan

# --- the decision on each row, without storage


def test_first_rows_are_upserted_and_repeats_in_a_segment_are_duplicates():
    decider = planner.Deduplicator(contact_limit=None)
    assert [decider.note(k) for k in (1, 2, 1, 3, 2)] == [None, None, Note.DUPLICATE, None, Note.DUPLICATE]
    assert decider.end_segment() == [1, 2, 3]


def test_emails_of_an_earlier_segment_are_tag_only_once_per_segment():
    decider = planner.Deduplicator(contact_limit=None)
    for key in (1, 2):
        decider.note(key)
    decider.end_segment()
    assert [decider.note(k) for k in (2, 2, 4)] == [Note.TAG_ONLY, Note.DUPLICATE, None]
    assert decider.tag_only_rows == 1
    assert decider.end_segment() == [2, 4]  # members: every email of the segment, tag-only ones included


def test_emails_past_the_contact_limit_are_limited_in_every_segment():
    decider = planner.Deduplicator(contact_limit=2)
    assert [decider.note(k) for k in (1, 2, 3, 3)] == [None, None, Note.LIMIT, Note.LIMIT]
    decider.end_segment()
    assert [decider.note(k) for k in (3, 1, 5)] == [Note.LIMIT, Note.TAG_ONLY, Note.LIMIT]


# --- planning against storage


def queued(settings) -> int:
    pump = Pump(settings)
    return pump.queue.get_queue_properties().approximate_message_count


@pytest.mark.parametrize("target, occurrence", [
    ("plan: write runs/<run>/plan.json", 1),  # the plan saved, the run not told
    ("plan: write runs/<run>/run.json", 2),  # the plan recorded on the run, no chunk queued
    ("plan: send <queue>", 1),  # the first chunk queued, the others not
])
def test_a_planner_dying_midway_is_finished_by_its_redelivery(api_settings, export_of, segments_container,
                                                             sandbox, target, occurrence):
    """The planner used to die between saving the run's wave sizes and queueing its chunks, and its
    redelivered message saw the wave sizes and returned: the run stayed `running` forever."""
    emails = clean_segment(segments_container, "Vip", 250)
    export = export_of(["Vip"])
    run_id = runs.start_run(api_settings, export, "manual").run_id
    probe = FaultPlan(target=target, occurrence=occurrence, mode="die")

    run = Pump(api_settings, probe=probe).until_ended(run_id, timeout=30)

    assert probe.fired == target
    assert run.status == "succeeded" and counts(run) == {"rows": 250, "sent": 250, "rejected": 0, "failed": 0}
    assert set(sandbox.contacts()) == set(emails)


def test_a_duplicate_planner_enqueues_nothing(api_settings, export_of, segments_container):
    clean_segment(segments_container, "Vip", 250)
    export = export_of(["Vip"])
    run_id = runs.start_run(api_settings, export, "manual").run_id
    pump = Pump(api_settings)
    (plan_message,) = pump.receive()
    second_started = []

    class DuplicateFirst(FaultPlan):
        def before(self, op, target):
            super().before(op, target)
            if not second_started and op == "write" and target.endswith("/plan.json"):
                second_started.append("b")  # a duplicate message's planner saves its plan first, and queues it
                runs.process_message(api_settings, plan_message.content, delivery="b")

    pump.probe = DuplicateFirst(armed=False)
    pump.deliver(plan_message)  # plans too, loses the plan write
    runs.process_message(api_settings, plan_message.content, delivery="c")  # a late duplicate

    assert second_started and queued(api_settings) == 3  # the three chunks, once
    assert runs.get_run(api_settings, run_id).wave_sizes == [3]
    assert pump.until_ended(run_id).status == "succeeded"


def test_a_waves_chunks_become_visible_at_the_pace_of_the_connections_budget(api_settings, export_of,
                                                                            segments_container):
    """All at once, a chunk back from waiting on its batches queued behind every chunk of the run, and
    the chunks' finishing work piled up at the run's end."""
    clean_segment(segments_container, "Vip", 1000)  # 10 chunks of 100 rows: one upsert each
    export = export_of(["Vip"], tag_contacts=False, requests_per_minute=12)  # a grant every 5.5 s
    run_id = runs.start_run(api_settings, export, "manual").run_id
    pump = Pump(api_settings)
    (plan_message,) = pump.receive()
    pump.deliver(plan_message)

    visible = pump.queue.peek_messages(max_messages=32)
    assert queued(api_settings) == 10
    assert len(visible) == 2  # a head of one request's worth, then one chunk per grant
    assert runs.get_run(api_settings, run_id).wave_sizes == [10]


def test_a_missing_segment_fails_the_run_naming_it(api_settings, export_of, segments_container, pump):
    export = export_of(["Nowhere"])
    run = pump(runs.start_run(api_settings, export, "manual").run_id)
    assert run.status == "failed" and "Nowhere" in run.error


def test_a_plan_that_always_fails_fails_the_run_with_its_error(api_settings, export_of, segments_container,
                                                              monkeypatch, pump):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])

    def broken(*args, **kwargs):
        raise OSError("storage hiccup")

    monkeypatch.setattr(planner.Deduplicator, "note", broken)
    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "failed"
    assert run.error == "planning failed on every attempt: OSError: storage hiccup"


# --- what each mode sends of a row, without storage


def decider_on(mode):
    """A SyncDecider on a state where a@ is as sent and tagged A, b@ is as sent without tag A."""
    from tests.sync.conftest import make_state

    state = make_state({"a@example.com": ("Ann", {"A"}), "b@example.com": ("Ben", set())}, ("A",))
    decider = planner.SyncDecider(state, mode, tagging=True)
    decider.start_segment("A")
    return decider


def row(email: str, first_name: str) -> tuple[int, int]:
    from shared.mapping import email_key
    from tests.sync.conftest import body

    return email_key(email), sync.fingerprint(body(email, first_name))


ROWS = {"unchanged": row("a@example.com", "Ann"), "changed": row("a@example.com", "Anna"),
        "tagOnly": row("b@example.com", "Ben"), "new": row("n@example.com", "Nia")}


@pytest.mark.parametrize("mode, expected", [
    (sync.SyncMode.INCREMENTAL, {"unchanged": Note.UNCHANGED, "changed": Note.CHANGED, "tagOnly": Note.TAG,
                                 "new": None}),
    (sync.SyncMode.FULL, {"unchanged": Note.CHANGED_TAG, "changed": Note.CHANGED_TAG, "tagOnly": Note.CHANGED_TAG,
                          "new": None}),  # every valid row upserted (and tagged): edits made in Omnisend repaired
])
def test_a_full_run_upserts_every_row_an_incremental_run_only_what_changed(mode, expected):
    decider = decider_on(mode)
    assert {name: decider.note(*keys, None) for name, keys in ROWS.items()} == expected


def test_a_preview_classifies_rows_as_an_incremental_run_would():
    decider = decider_on(sync.SyncMode.PREVIEW)
    assert {name: decider.row_class(*keys, None).value for name, keys in ROWS.items()} == {
        "unchanged": "unchanged", "changed": "changed", "tagOnly": "tagOnly", "new": "new"}
    # A contact an earlier segment delivers: only its membership of this segment's tag counts.
    assert decider.row_class(*ROWS["changed"], Note.TAG_ONLY) is sync.RowClass.UNCHANGED
    assert decider.row_class(*ROWS["new"], Note.TAG_ONLY) is sync.RowClass.TAG_ONLY
