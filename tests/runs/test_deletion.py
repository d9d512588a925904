"""An export deleted with its tags (shared/runs/deletion.py): the `delete` run, through the engine."""
from __future__ import annotations

import pytest

from shared import documents, runs, storage, sync
from shared.runs import deletion
from tests.runs.conftest import Pump, clean_segment
from tests.runs.faults import FaultPlan


@pytest.mark.parametrize("site, occurrence", [
    ("untag: write runs/<run>/progress/untag-<n>.json", 3),  # after the second removal call was saved
    ("untag: write runs/<run>/run.json", 2),  # after the progress of the first call was shown
    ("untag: write runs/<run>/run.json", 5),  # right after the run was saved as succeeded
    ("untag: delete active-runs/<id>.json", 1),  # the export is gone, its lock released, nothing more
])
def test_a_delete_run_that_dies_resumes_without_repeating_a_call_and_deletes_the_export(
        api_settings, export_of, segments_container, sandbox, pump, monkeypatch, site, occurrence):
    monkeypatch.setattr(deletion, "PROGRESS_SECONDS", 0.0)  # progress after every call: run.json writes 1-4, end 5
    emails = clean_segment(segments_container, "Vip", 600)
    export = export_of(["Vip"])
    assert pump(runs.start_run(api_settings, export, "manual").run_id).status == "succeeded"
    before = len(sandbox.request_log())

    probe = FaultPlan(target=site, occurrence=occurrence, mode="die")
    run = pump(runs.start_tag_removal(api_settings, export).run_id, probe=probe, watchdog=True)
    Pump(api_settings).watch()  # the watchdog sees through an end the process died in

    assert probe.fired == site
    assert (run.status, run.untagged, run.progress) == ("succeeded", 600, 1.0)
    removals = [r for r in sandbox.request_log()[before:] if (r.method, r.path) == ("DELETE", "/contacts/tags")]
    assert [len(r.body["emails"]) for r in removals] == [250, 250, 100]  # each call once
    assert all(tags == [] for tags in map(sandbox.tags_of, emails))
    with pytest.raises(documents.DocumentNotFoundError):
        documents.DocumentStore(api_settings).get_export(export.id)
    state = sync.SyncStateStore(storage.container(api_settings, api_settings.state_container))
    assert state.load(export.id) is None
    assert runs.deleting_run(api_settings, export.id) is None  # the export lock is released
