"""Starting, listing and cancelling runs; the export lock; scheduled starts (shared/runs/lifecycle.py, lock.py)."""
from __future__ import annotations

import pytest

from shared import runs, storage
from shared.runs import lock
from shared.runs.store import RunStore
from tests.runs.conftest import clean_segment, counts
from tests.runs.faults import FaultPlan


def test_a_scheduled_run_is_skipped_while_one_is_in_progress(api_settings, export_of, segments_container, pump):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    first = runs.start_run(api_settings, export, "manual")

    with pytest.raises(runs.RunInProgressError) as refused:
        runs.start_run(api_settings, export, "manual")
    skipped = runs.start_scheduled_runs(api_settings)

    assert refused.value.run_id == first.run_id
    assert [(r.status, r.trigger) for r in skipped] == [("skipped", "schedule")]
    assert first.run_id in skipped[0].error
    assert counts(skipped[0]) == {"rows": 0, "sent": 0, "rejected": 0, "failed": 0}
    assert pump(first.run_id).status == "succeeded"
    assert [r.run_id for r in runs.list_runs(api_settings, export.id)] == [skipped[0].run_id, first.run_id]


class StartsAnotherRunFirst(FaultPlan):
    """Starts `second()` just before the first start records its run, i.e. after it took the lock."""

    def __init__(self, second) -> None:
        super().__init__(armed=False)
        self.second, self.outcome = second, None

    def before(self, op, target):
        super().before(op, target)
        if self.outcome is None and op == "write" and target.endswith("/run.json"):
            self.outcome = "started"
            try:
                self.outcome = self.second()
            except runs.RunInProgressError as refused:
                self.outcome = refused


@pytest.mark.parametrize("second_trigger", ["manual", "schedule"])
def test_of_two_simultaneous_starts_exactly_one_runs(api_settings, export_of, segments_container, second_trigger):
    """The lock used to be claimed before the run existed, and a second start that found a lock
    naming an unknown run took it over: both ran. Now the lock holds while the first run is recorded."""
    from shared import blobstate

    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    probe = StartsAnotherRunFirst(lambda: runs.start_run(api_settings, export, second_trigger))
    blobstate.install_probe(probe)
    try:
        first = runs.start_run(api_settings, export, "manual")
    finally:
        blobstate.install_probe(None)

    assert first.status == "queued"
    if second_trigger == "manual":
        assert isinstance(probe.outcome, runs.RunInProgressError) and probe.outcome.run_id == first.run_id
    else:
        assert probe.outcome.status == "skipped" and first.run_id in probe.outcome.error
    assert lock.read(RunStore(api_settings), export.id).run_id == first.run_id


def test_a_lock_whose_run_was_never_recorded_is_free_after_its_grace(api_settings, export_of, segments_container,
                                                                    monkeypatch):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    store = RunStore(api_settings)
    store.ensure()
    assert lock.claim(store, export.id, "20260101T000000-deadbeef") is None  # a start that died right after
    with pytest.raises(runs.RunInProgressError):
        runs.start_run(api_settings, export, "manual")

    monkeypatch.setattr(lock, "LOCK_GRACE", lock.LOCK_GRACE * 0)
    assert runs.start_run(api_settings, export, "manual").status == "queued"


def test_scheduled_starts_are_independent_per_export(api_settings, export_of, segments_container):
    """start_scheduled_runs stopped at the first export that raised."""
    clean_segment(segments_container, "Vip", 10)
    broken_lock, healthy = export_of(["Vip"]), export_of(["Vip"])
    state = storage.container(api_settings, api_settings.state_container)
    state.upload_blob(f"active-runs/{broken_lock.id}.json", b"not json")
    state.upload_blob("exports/unreadable.json", b'{"id": "unreadable"')

    started = runs.start_scheduled_runs(api_settings)

    assert [(r.export_id, r.status) for r in started] == [(healthy.id, "queued")]


def test_cancelling_releases_the_export(api_settings, export_of, segments_container, pump):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    run = runs.start_run(api_settings, export, "manual")

    cancelled = runs.cancel_run(api_settings, run.run_id)

    assert cancelled.status == "cancelled" and cancelled.error.startswith("cancelled by a user")
    assert runs.start_run(api_settings, export, "manual").status == "queued"
    assert runs.cancel_run(api_settings, run.run_id).status == "cancelled"  # cancelling again changes nothing


def test_deleting_the_export_cancels_its_run(api_settings, export_of, segments_container):
    clean_segment(segments_container, "Vip", 10)
    export = export_of(["Vip"])
    run = runs.start_run(api_settings, export, "manual")

    runs.cancel_export_runs(api_settings, export.id)

    assert runs.get_run(api_settings, run.run_id).error.startswith("cancelled: the export was deleted")
    assert lock.read(RunStore(api_settings), export.id) is None


def test_a_run_id_that_could_escape_its_folder_is_never_found(api_settings):
    for bad in ("../exports/x", "a/b", "", "x" * 65):
        with pytest.raises(runs.RunNotFoundError):
            runs.get_run(api_settings, bad)
