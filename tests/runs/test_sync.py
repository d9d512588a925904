"""Incremental mirror sync in the run engine: a run sends only what changed against the export's sync
state, and removes only the tags the export itself added."""
from __future__ import annotations

import dataclasses

from shared import documents, runs, sync
from tests.runs.conftest import counts, sync_counts

HEADER = "PrimaryEmail,FirstName,LastName,Address1,Country,State,City,PostCode\r\n"


def person(i: int) -> str:
    return f"p{i:04d}@example.com"


def write_people(container, name: str, people: dict[str, str]) -> None:
    """A plain segment of (email -> first name) rows."""
    body = HEADER + "".join(f"{email},{first},,,,,,\r\n" for email, first in people.items())
    container.upload_blob(f"{name}.csv", body.encode(), overwrite=True)


def day_one(container) -> tuple[dict, dict]:
    vip = {person(i): f"Ann{i}" for i in range(120)}
    news = {person(i): f"Ann{i}" for i in range(80, 150)}
    write_people(container, "Vip", vip)
    write_people(container, "News", news)
    return vip, news


def writes(sandbox, since: int) -> list:
    """The requests after `since` that change something in Omnisend."""
    return [r for r in sandbox.request_log()[since:] if r.method != "GET"]


def test_a_rerun_of_an_unchanged_export_writes_nothing_and_counts_every_row_unchanged(
        api_settings, export_of, segments_container, sandbox, pump):
    day_one(segments_container)
    export = export_of(["Vip", "News"])
    first = pump(runs.start_run(api_settings, export, "manual").run_id)
    assert first.status == "succeeded" and first.mode == "full"  # no state yet: everything is new
    assert sync_counts(first) == {"added": 150, "updated": 40, "unchanged": 0}  # 40 rows only add the News tag
    before = len(sandbox.request_log())

    second = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert second.status == "succeeded" and second.mode == "incremental"
    assert writes(sandbox, before) == []
    assert counts(second) == {"rows": 190, "sent": 0, "rejected": 0, "failed": 0}
    assert sync_counts(second) == {"added": 0, "updated": 0, "unchanged": 190} and second.untagged == 0


def test_the_next_days_export_sends_exactly_the_changes_leavers_and_joiners(
        api_settings, export_of, segments_container, sandbox, pump):
    vip, news = day_one(segments_container)
    export = export_of(["Vip", "News"])
    pump(runs.start_run(api_settings, export, "manual").run_id)
    sandbox.tag_by_hand(person(3), add=["Loyal"])  # someone else's tag on a leaver: stays
    before = len(sandbox.request_log())

    for i in range(10):
        del vip[person(i)]  # left Vip, and every segment
    for i in range(10, 15):
        vip[person(i)] = f"Renamed{i}"
    for i in range(150, 158):
        vip[person(i)] = f"New{i}"
    for i in range(80, 85):
        del news[person(i)]  # left News, still in Vip
    write_people(segments_container, "Vip", vip)
    write_people(segments_container, "News", news)
    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "succeeded"
    assert counts(run) == {"rows": 118 + 65, "sent": 13, "rejected": 0, "failed": 0}
    assert sync_counts(run) == {"added": 8, "updated": 5, "unchanged": 170} and run.untagged == 15
    sent = writes(sandbox, before)
    upserted = sorted(item["identifiers"][0]["id"] for r in sent if r.path == "/batches" for item in r.body["items"])
    assert upserted == sorted([person(i) for i in range(10, 15)] + [person(i) for i in range(150, 158)])
    tagged = {(r.method, tuple(r.body["tags"])): sorted(r.body["emails"]) for r in sent if r.path == "/contacts/tags"}
    assert tagged == {
        ("POST", ("Vip",)): [person(i) for i in range(150, 158)],  # renamed contacts carry their tag already
        ("DELETE", ("Vip",)): [person(i) for i in range(10)],
        ("DELETE", ("News",)): [person(i) for i in range(80, 85)],
    }
    contacts = sandbox.contacts()
    assert contacts[person(3)]["tags"] == ["Loyal"] and contacts[person(12)]["firstName"] == "Renamed12"
    assert sorted(contacts[person(82)]["tags"]) == ["Vip"]


def test_a_same_named_tag_the_export_never_set_survives(api_settings, export_of, segments_container, sandbox,
                                                       pump):
    vip, _ = day_one(segments_container)
    export = export_of(["Vip", "News"])
    pump(runs.start_run(api_settings, export, "manual").run_id)
    sandbox.tag_by_hand("marketer.pick@example.com", add=["Vip"])  # the same tag, set by hand

    write_people(segments_container, "Vip", {e: n for e, n in vip.items() if e != person(0)})
    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.untagged == 1
    contacts = sandbox.contacts()
    assert contacts["marketer.pick@example.com"]["tags"] == ["Vip"] and "Vip" not in contacts[person(0)]["tags"]


def test_the_state_keeps_only_verified_outcomes(api_settings, export_of, segments_container, pump):
    day_one(segments_container)
    export = export_of(["Vip", "News"])
    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    stored = sync.SyncStateStore(runs.store.RunStore(api_settings).container).load(export.id)

    assert len(stored.state) == 150 and stored.state.info.run_id == run.run_id
    assert stored.state.tags == ("Vip", "News")
    assert sorted(stored.state.masks) == [1] * 80 + [2] * 30 + [3] * 40


def test_a_renamed_tag_moves_the_new_one_added_the_old_one_taken_off_what_the_export_tagged(
        api_settings, export_of, segments_container, sandbox, pump):
    vip, news = day_one(segments_container)
    export = export_of(["Vip", "News"])
    pump(runs.start_run(api_settings, export, "manual").run_id)
    sandbox.tag_by_hand("marketer.pick@example.com", add=["Vip"])  # the old name, set by hand
    before = len(sandbox.request_log())

    store = documents.DocumentStore(api_settings)
    renamed = dataclasses.replace(store.get_export(export.id), tags={"Vip": "VIP customers"})
    store.put_export(renamed, if_match=renamed.etag)
    run = pump(runs.start_run(api_settings, renamed, "manual").run_id)

    assert run.status == "succeeded" and run.untagged == len(vip)
    assert sync_counts(run) == {"added": 0, "updated": len(vip), "unchanged": len(news)}
    sent = writes(sandbox, before)
    assert not [r for r in sent if r.path == "/batches"]  # only tags moved
    tagged: dict[tuple, list] = {}
    for r in sent:
        if r.path == "/contacts/tags":  # one call per chunk and per 250 emails
            tagged.setdefault((r.method, tuple(r.body["tags"])), []).extend(r.body["emails"])
    assert {call: sorted(emails) for call, emails in tagged.items()} == {("POST", ("VIP customers",)): sorted(vip),
                                                                         ("DELETE", ("Vip",)): sorted(vip)}
    tags = sandbox.all_tags()
    assert tags["marketer.pick@example.com"] == ["Vip"]
    assert {e for e, found in tags.items() if "VIP customers" in found} == set(vip)
    assert {e for e, found in tags.items() if "Vip" in found} == {"marketer.pick@example.com"}
    stored = sync.SyncStateStore(runs.store.RunStore(api_settings).container).load(export.id)
    assert stored.state.tags == ("VIP customers", "News")  # the retired tag is gone once no contact carries it

    # Leavers of the renamed segment lose the new tag, by the same rules.
    del vip[person(0)]
    write_people(segments_container, "Vip", vip)
    after = pump(runs.start_run(api_settings, renamed, "manual").run_id)
    assert after.untagged == 1 and sandbox.tags_of(person(0)) == []


def test_two_segments_named_to_one_tag_share_it_and_a_contact_keeps_it_while_in_either(
        api_settings, export_of, segments_container, sandbox, pump):
    vip, news = day_one(segments_container)
    export = export_of(["Vip", "News"], tags={"Vip": "Customers", "News": "Customers"})
    pump(runs.start_run(api_settings, export, "manual").run_id)
    assert {e for e, found in sandbox.all_tags().items() if found == ["Customers"]} == set(vip) | set(news)

    for i in range(100, 120):
        del vip[person(i)]  # 100-119 are in News too: they keep the tag
    for i in range(0, 5):
        del vip[person(i)]  # in no segment now: they lose it
    write_people(segments_container, "Vip", vip)
    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.untagged == 5
    assert {e for e, found in sandbox.all_tags().items() if found == ["Customers"]} == set(vip) | set(news)
def test_a_few_changes_in_many_chunks_go_out_in_full_batches(api_settings, export_of, segments_container, sandbox,
                                                             pump):
    people = {person(i): f"Ann{i}" for i in range(500)}  # five chunks of 100 rows
    write_people(segments_container, "Vip", people)
    export = export_of(["Vip"])
    pump(runs.start_run(api_settings, export, "manual").run_id)
    before = len(sandbox.request_log())

    changed = [person(i) for i in range(7, 500, 100)] + [person(i) for i in range(450, 460)]
    for email in changed:
        people[email] = "Renamed"
    people[person(499)] = "Renamed"  # the last chunk's last row
    write_people(segments_container, "Vip", people)
    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "succeeded" and run.chunk_count == 1  # 16 rows to send in five chunks: one unit
    assert sync_counts(run) == {"added": 0, "updated": 16, "unchanged": 484}
    batches = [r for r in writes(sandbox, before) if r.path == "/batches"]
    assert len(batches) == 1
    assert sorted(item["firstName"] for item in batches[0].body["items"]) == ["Renamed"] * 16
