"""Run modes in the run engine: a full run resends every valid row, a preview writes nothing and reports
what an incremental run would do, scheduled runs go full after `fullResyncDays`, and a changed mapping
sends the rows it changes once."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from shared import documents, runs, sync
from shared.blobstate import utc_text
from shared.mapping import contact_request
from tests.runs.conftest import counts, sync_counts
from tests.runs.test_sync import HEADER, day_one, person, write_people, writes


def state_store(settings) -> sync.SyncStateStore:
    return sync.SyncStateStore(runs.store.RunStore(settings).container)


def upserted(requests) -> list[str]:
    return sorted(item["identifiers"][0]["id"] for r in requests if r.path == "/batches" for item in r.body["items"])


def saved(settings, export: documents.Export, **changes) -> documents.Export:
    store = documents.DocumentStore(settings)
    current = store.get_export(export.id)
    changed = dataclasses.replace(current, **changes)
    store.put_export(changed, if_match=current.etag)
    return changed


def the_next_day(container, vip: dict, news: dict) -> None:
    """10 leave every segment, 5 are renamed, 8 join Vip, 5 leave News only."""
    for i in range(10):
        del vip[person(i)]
    for i in range(10, 15):
        vip[person(i)] = f"Renamed{i}"
    for i in range(150, 158):
        vip[person(i)] = f"New{i}"
    for i in range(80, 85):
        del news[person(i)]
    write_people(container, "Vip", vip)
    write_people(container, "News", news)


def test_a_full_run_resends_every_valid_row_repairs_edits_made_in_omnisend_and_removes_only_owned_tags(
        api_settings, export_of, segments_container, sandbox, sandbox_api, pump):
    vip, news = day_one(segments_container)
    export = export_of(["Vip", "News"])
    pump(runs.start_run(api_settings, export, "manual").run_id)
    sandbox_api("POST", "/contacts", json=contact_request(person(5), firstName="EditedInOmnisend"))
    sandbox.tag_by_hand("marketer.pick@example.com", add=["Vip"])  # the same tag, set by hand
    del vip[person(0)]  # leaves Vip and the export
    write_people(segments_container, "Vip", vip)
    before = len(sandbox.request_log())

    run = pump(runs.start_run(api_settings, export, "manual", mode="full").run_id)

    assert (run.status, run.mode) == ("succeeded", "full")
    assert counts(run) == {"rows": 119 + 70, "sent": 119 + 70, "rejected": 0, "failed": 0}
    assert sync_counts(run) == {"added": 0, "updated": 189, "unchanged": 0}
    sent = writes(sandbox, before)
    assert upserted(sent) == sorted(person(i) for i in range(1, 150))  # unchanged contacts too, each once
    assert run.untagged == 1
    contacts = sandbox.contacts()
    assert contacts[person(5)]["firstName"] == "Ann5"  # the edit made in Omnisend is repaired
    assert contacts["marketer.pick@example.com"]["tags"] == ["Vip"] and contacts[person(0)]["tags"] == []
    assert state_store(api_settings).load(export.id).state.info.last_full_at >= run.started_at


def test_a_preview_writes_nothing_and_reports_what_the_incremental_run_then_does(
        api_settings, export_of, segments_container, sandbox, pump):
    vip, news = day_one(segments_container)
    export = export_of(["Vip", "News"])
    pump(runs.start_run(api_settings, export, "manual").run_id)
    the_next_day(segments_container, vip, news)
    before_state, before = state_store(api_settings).load(export.id), len(sandbox.request_log())

    preview = pump(runs.start_run(api_settings, export, "manual", mode="preview").run_id)

    assert (preview.status, preview.mode, preview.untagged) == ("succeeded", "preview", 0)
    assert counts(preview) == {"rows": 183, "sent": 0, "rejected": 0, "failed": 0}
    assert sync_counts(preview) == {"added": 0, "updated": 0, "unchanged": 183}
    assert writes(sandbox, before) == []
    assert state_store(api_settings).load(export.id).etag == before_state.etag  # not a full run, not any run
    report = runs.preview_report(api_settings, preview.run_id)
    assert report["counts"] == {"new": 8, "changed": 5, "tagOnly": 0, "unchanged": 170}
    assert [s["email"] for s in report["samples"]["new"]] == [person(i) for i in range(150, 158)]
    assert [s["email"] for s in report["samples"]["changed"]] == [person(i) for i in range(10, 15)]
    assert report["samples"]["changed"][0] == {"segment": "Vip", "row": 1, "email": person(10), "partition": "Vip.csv"}
    assert len(report["samples"]["unchanged"]) == sync.preview.SAMPLE_LIMIT
    assert {tag: (found["decision"], found["leavers"], sorted(found["sample"]))
            for tag, found in report["leavers"].items()} == {
        "Vip": ("apply", 10, [person(i) for i in range(10)]), "News": ("apply", 5, [person(i) for i in range(80, 85)])}
    assert report["removalsHeld"] is False

    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.mode == "incremental"
    assert sync_counts(run) == {"added": 8, "updated": 5, "unchanged": 170} and run.untagged == 15


def test_a_preview_says_when_the_removal_gate_would_hold(api_settings, export_of, segments_container, sandbox,
                                                         pump):
    vip, news = day_one(segments_container)
    export = export_of(["Vip", "News"])
    pump(runs.start_run(api_settings, export, "manual").run_id)
    the_next_day(segments_container, vip, news)
    export = saved(api_settings, export, max_removal_percent=7.5)

    preview = pump(runs.start_run(api_settings, export, "manual", mode="preview").run_id)

    report = runs.preview_report(api_settings, preview.run_id)
    assert {tag: found["decision"] for tag, found in report["leavers"].items()} == {"Vip": "hold", "News": "apply"}
    assert report["removalsHeld"] is True and "'Vip'" in report["heldReason"]
    assert preview.status == "succeeded"


def test_a_run_that_asked_for_nothing_has_no_report(api_settings, export_of, segments_container, pump):
    day_one(segments_container)
    export = export_of(["Vip", "News"])
    run = pump(runs.start_run(api_settings, export, "manual").run_id)
    assert runs.preview_report(api_settings, run.run_id) is None
    with pytest.raises(ValueError):
        runs.start_run(api_settings, export, "manual", mode="sideways")


@pytest.mark.parametrize("last_full_days_ago, full_resync_days, trigger, expected", [
    (8, 7, "schedule", "full"),  # the last full run is older than fullResyncDays
    (6, 7, "schedule", "incremental"),
    (30, 0, "schedule", "incremental"),  # 0: never forced
    (8, 7, "upload", "incremental"),  # only scheduled runs are turned full
    (8, 7, "manual", "incremental"),
])
def test_a_scheduled_run_goes_full_when_the_last_full_run_is_older_than_full_resync_days(
        api_settings, export_of, segments_container, sandbox, pump, last_full_days_ago, full_resync_days, trigger,
        expected):
    day_one(segments_container)
    export = export_of(["Vip", "News"])
    pump(runs.start_run(api_settings, export, "manual").run_id)
    store = state_store(api_settings)
    stored = store.load(export.id)
    last_full = utc_text(datetime.now(timezone.utc) - timedelta(days=last_full_days_ago))
    store.save(export.id, stored.state.with_info(last_full_at=last_full), etag=stored.etag)
    export = saved(api_settings, export, full_resync_days=full_resync_days)
    before = len(sandbox.request_log())

    run = pump(runs.start_run(api_settings, export, trigger).run_id)

    assert run.mode == expected
    assert len(upserted(writes(sandbox, before))) == (150 if expected == "full" else 0)
    now_full = store.load(export.id).state.info.last_full_at
    assert (now_full > last_full) if expected == "full" else (now_full == last_full)


def write_named(container, name: str, people: dict[str, tuple[str, str]]) -> None:
    """A plain segment of (email -> (first name, last name)) rows."""
    body = HEADER + "".join(f"{email},{first},{last},,,,,\r\n" for email, (first, last) in people.items())
    container.upload_blob(f"{name}.csv", body.encode(), overwrite=True)


def test_a_changed_mapping_sends_the_rows_it_changes_once(api_settings, export_of, segments_container, sandbox,
                                                          pump):
    people = {person(i): (f"Ann{i}", f"Lee{i}" if i % 4 == 0 else "") for i in range(40)}
    write_named(segments_container, "Vip", people)
    export = export_of(["Vip"])
    export = saved(api_settings, export, mapping={k: v for k, v in export.mapping.items() if k != "lastName"})
    pump(runs.start_run(api_settings, export, "manual").run_id)
    export = saved(api_settings, export, mapping={**export.mapping, "lastName": "LastName"})
    before = len(sandbox.request_log())

    changed = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert changed.mode == "incremental"
    assert sync_counts(changed) == {"added": 0, "updated": 10, "unchanged": 30}
    assert upserted(writes(sandbox, before)) == sorted(person(i) for i in range(0, 40, 4))  # only rows with a last name
    assert sandbox.contacts()[person(4)]["lastName"] == "Lee4"
    before = len(sandbox.request_log())

    again = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert sync_counts(again) == {"added": 0, "updated": 0, "unchanged": 40} and writes(sandbox, before) == []
