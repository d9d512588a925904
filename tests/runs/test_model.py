"""The run model without storage: the API view, statuses, the stored form (shared/runs/model.py)."""
from __future__ import annotations

import json

from shared.csvscan import CsvFormat
from shared.runs.model import Counts, Due, ExportSnapshot, PlannedChunk, Run, RunStatus, Sends, StepKind, Trigger
from shared.segments import Chunk

SNAPSHOT = ExportSnapshot("conn-1", ("Vip", "News"), {"email": "EMail"}, True)


def a_run(**changes) -> Run:
    values = dict(run_id="20260101T000000-0123abcd", export_id="exp-1", trigger=Trigger.MANUAL, export=SNAPSHOT,
                  started_at="2026-01-01T00:00:00.000Z")
    return Run(**{**values, **changes})


def test_the_api_view_keeps_its_shape():
    run = a_run(status=RunStatus.PARTIALLY_SUCCEEDED, counts=Counts(10, 5, 2, 1, 4, 1, 2), planned_rows=10, untagged=3,
                rate_limited=4, finished_at="2026-01-01T00:05:00.000Z", error="one segment's tag stayed")
    assert run.to_api() == {
        "runId": "20260101T000000-0123abcd", "exportId": "exp-1", "trigger": "manual",
        "mode": "incremental", "status": "partiallySucceeded",
        "counts": {"rows": 10, "sent": 5, "rejected": 2, "failed": 1, "added": 4, "updated": 1, "unchanged": 2},
        "progress": 1.0, "startedAt": "2026-01-01T00:00:00.000Z", "finishedAt": "2026-01-01T00:05:00.000Z",
        "untagged": 3, "error": "one segment's tag stayed",
    }
    untagged_export = a_run(export=ExportSnapshot("c", ("Vip",), {"email": "E"}, False))
    assert set(untagged_export.to_api()) == {"runId", "exportId", "trigger", "mode", "status", "counts", "progress",
                                             "startedAt", "finishedAt"}


def test_statuses_are_the_api_strings_and_know_whether_they_are_final():
    assert json.dumps({"status": RunStatus.PARTIALLY_SUCCEEDED}) == '{"status": "partiallySucceeded"}'
    assert [s.value for s in RunStatus if s.terminal] == [
        "succeeded", "partiallySucceeded", "failed", "cancelled", "skipped"]


def test_progress_stays_below_one_until_the_run_has_ended():
    running = a_run(status=RunStatus.RUNNING, planned_rows=10, counts=Counts(10, 10, 0, 0))
    assert running.progress == 0.99
    assert a_run(status=RunStatus.QUEUED).progress == 0.0


def test_a_delete_run_shows_its_tag_removals_as_progress_and_untagged_whether_the_export_tags_or_not():
    untagging = ExportSnapshot("c", ("Vip",), {"email": "E"}, False)
    running = a_run(trigger=Trigger.DELETE, export=untagging, status=RunStatus.RUNNING, removals_planned=400,
                    removals_done=100)
    assert (running.progress, running.to_api()["untagged"], running.to_api()["trigger"]) == (0.25, 100, "delete")
    assert a_run(trigger=Trigger.DELETE, status=RunStatus.RUNNING).progress == 0.0  # nothing to remove yet
    ended = a_run(trigger=Trigger.DELETE, status=RunStatus.SUCCEEDED, removals_planned=400, removals_done=300,
                  untagged=400)
    assert (ended.progress, ended.to_api()["untagged"]) == (1.0, 400)
    assert Run.from_dict(json.loads(json.dumps(running.to_dict()))) == running


def test_the_stored_form_round_trips():
    run = a_run(status=RunStatus.RUNNING, counts=Counts(3, 2, 1, 0), wave_sizes=[2, 1], plan_token="ab12",
                waves_opened=1, chunks_done=[0], untag_pending=[1], outbox=[Due(StepKind.WAVE, 1, 2, "me", "t")],
                redrives=1, rate_limited=2)
    stored = json.loads(json.dumps(run.to_dict()))
    assert Run.from_dict(stored) == run
    assert stored["export"] == {"connectionId": "conn-1", "segments": ["Vip", "News"],
                                "mapping": {"email": "EMail"}, "tagContacts": True, "tags": {},
                                "maxRemovalPercent": 20.0, "fullResyncDays": 7}


def test_a_snapshot_from_before_the_sync_settings_reads_with_their_defaults():
    old = ExportSnapshot.from_dict({"connectionId": "c", "segments": ["Vip"], "mapping": {"email": "E"},
                                    "tagContacts": True})
    assert (old.tags, old.max_removal_percent, old.full_resync_days) == ({}, 20.0, 7)
    assert old.tag_of("Vip") == "Vip"
    named = ExportSnapshot("c", ("Vip", "News"), {"email": "E"}, True, {"Vip": "VIP customers"})
    assert (named.tag_of("Vip"), named.tag_of("News")) == ("VIP customers", "News")
    assert ExportSnapshot("c", ("Vip",), {"email": "E"}, False, {"Vip": "x"}).tag_of("Vip") is None


def test_the_deadline_is_the_start_plus_the_allowed_hours():
    assert a_run().deadline(6) == "2026-01-01T06:00:00.000Z"


def test_a_planned_chunk_keeps_what_it_sends_and_a_plan_of_before_reads_without_it():
    chunk = Chunk("Vip", "Vip.csv", "0x1", 0, 100, 1, 10, ("Email",), CsvFormat())
    planned = PlannedChunk(3, 0, chunk, True, sends=Sends(upserts=8, tagged=10))
    stored = json.loads(json.dumps(planned.to_dict()))
    assert PlannedChunk.from_dict(stored) == planned and stored["sends"] == {"upserts": 8, "tagged": 10}
    del stored["sends"]
    assert PlannedChunk.from_dict(stored).sends is None  # stagger.py then counts every row
