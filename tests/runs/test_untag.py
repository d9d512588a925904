"""Contacts that left a segment lose the tag the export gave them (shared/runs/untag.py)."""
from __future__ import annotations

from array import array

import pytest

from shared import runs
from shared import sync
from shared.mapping import email_key
from shared.omnisend import MAX_TAG_EMAILS, OmnisendClient
from shared.ratelimit import SlidingWindowLimiter
from shared.runs.approval import approval_calls
from shared.runs.untag import removal_calls
from tests.runs.conftest import clean_segment, sync_counts
from tools.sample_export import ProfileSlice, generate_profiles, write_plain_segment


def test_removal_calls_go_by_email_at_most_250_a_call_and_only_to_contacts_the_export_tagged():
    tagged = [f"t{i}@x.io" for i in range(600)]
    state = sync.SyncState.from_entries([(e, 7, 1) for e in tagged] + [("never@x.io", 7, 0)], sync.StateInfo(("Vip",)))
    plan = sync.plan_removals(state, {"Vip": "Vip"}, {"Vip": [email_key(tagged[0])]}, max_removal_percent=100)

    calls = removal_calls(plan, state)

    assert [len(emails) for _, emails, _ in calls] == [MAX_TAG_EMAILS, MAX_TAG_EMAILS, 99]
    removed = [e for _, emails, _ in calls for e in emails]
    assert sorted(removed) == sorted(tagged[1:]) and "never@x.io" not in removed
    assert all(list(map(email_key, emails)) == list(keys) for _, emails, keys in calls)


def test_contacts_that_left_a_segment_lose_its_tag_and_keep_the_others(api_settings, export_of,
                                                                       segments_container, sandbox, omnisend_key,
                                                                       pump):
    population = generate_profiles(140, seed=9, bad_share=0.0, duplicate_share=0.0)
    emails = [population.expected(i).email for i in range(140)]
    write_plain_segment(segments_container, "Vip", ProfileSlice(population, 0, 100))
    export = export_of(["Vip"], max_removal_percent=30)  # 40 of 140 leave: 28.6%, under the gate
    first = pump(runs.start_run(api_settings, export, "manual").run_id)
    assert first.untagged == 0 and first.to_api()["untagged"] == 0

    with OmnisendClient(omnisend_key, base_url=sandbox.url, limiter=SlidingWindowLimiter()) as client:
        client.add_tags(emails[:5], ["Loyal"])  # a tag of someone else's: never touched

    write_plain_segment(segments_container, "Vip", ProfileSlice(population, 40, 100))  # 40 left, 40 joined
    second = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert second.status == "succeeded" and second.untagged == 40
    contacts = sandbox.contacts()
    assert {e for e, c in contacts.items() if "Vip" in c["tags"]} == set(emails[40:140])
    assert set(contacts) == set(emails)  # leavers stay in Omnisend: there is no delete
    assert {e for e, c in contacts.items() if "Loyal" in c["tags"]} == set(emails[:5])


def test_a_segment_without_a_valid_email_removes_no_tag(api_settings, export_of, segments_container, sandbox, pump):
    clean_segment(segments_container, "Vip", 30)
    export = export_of(["Vip"])
    pump(runs.start_run(api_settings, export, "manual").run_id)
    header = "PrimaryEmail,FirstName,LastName,Address1,Country,State,City,PostCode\r\n"
    segments_container.upload_blob("Vip.csv", (header + "not-an-email,Ann,,,,,,\r\n").encode(), overwrite=True)

    run = pump(runs.start_run(api_settings, export, "manual").run_id)

    assert run.status == "partiallySucceeded" and run.untagged == 0
    assert sum("Vip" in c["tags"] for c in sandbox.contacts().values()) == 30


def test_an_approval_untags_only_the_held_contacts_that_still_carry_the_tag():
    emails = [f"h{i}@x.io" for i in range(600)]
    state = sync.SyncState.from_entries([(e, 7, 1 if i % 3 else 0) for i, e in enumerate(emails)],
                                        sync.StateInfo(("Vip",)))
    held = array("Q", sorted(email_key(e) for e in emails[:560]))  # held earlier; every third lost the bit since

    calls = approval_calls(state, [("Vip", held), ("Gone", held)])  # a tag no longer in the state: nothing

    expected = {e for i, e in enumerate(emails[:560]) if i % 3}
    assert [tag for tag, _, _ in calls] == ["Vip", "Vip"] and len(calls[0][1]) == MAX_TAG_EMAILS
    assert {e for _, batch, _ in calls for e in batch} == expected
    assert all(list(map(email_key, batch)) == list(keys) for _, batch, keys in calls)


def test_removals_over_the_gate_are_held_until_approved(api_settings, export_of, segments_container, sandbox, pump,
                                                        pump_approval):
    population = generate_profiles(140, seed=9, bad_share=0.0, duplicate_share=0.0)
    emails = [population.expected(i).email for i in range(140)]
    write_plain_segment(segments_container, "Vip", ProfileSlice(population, 0, 100))
    export = export_of(["Vip"])  # maxRemovalPercent 20
    pump(runs.start_run(api_settings, export, "manual").run_id)
    write_plain_segment(segments_container, "Vip", ProfileSlice(population, 40, 100))  # 40 of 140 leave: 28.6%

    held = pump(runs.start_run(api_settings, export, "manual").run_id)

    view = held.to_api()
    assert view["status"] == "partiallySucceeded" and view["untagged"] == 0 and "error" not in view
    assert view["counts"]["rejected"] == view["counts"]["failed"] == 0 and view["counts"]["added"] == 40
    assert view["removalsHeld"]["tags"] == [{"tag": "Vip", "leavers": 40, "carriers": 100, "members": 100,
                                             "percent": 28.57, "reason": view["removalsHeld"]["tags"][0]["reason"]}]
    assert "over maxRemovalPercent 20%" in view["removalsHeld"]["reason"]
    assert {e for e, c in sandbox.contacts().items() if "Vip" in c["tags"]} == set(emails)  # joiners tagged, none lost

    approving = runs.approve_removals(api_settings, held.run_id, "ann@contoso.com")
    assert approving.to_api()["removalsApproved"]["status"] == "applying"
    applied = pump_approval(held.run_id)

    approved = applied.to_api()["removalsApproved"]
    assert (approved["by"], approved["status"], approved["removed"]) == ("ann@contoso.com", "applied", 40)
    assert applied.status == "partiallySucceeded" and applied.untagged == 0  # the run stays as it ended
    assert {e for e, c in sandbox.contacts().items() if "Vip" in c["tags"]} == set(emails[40:])
    with pytest.raises(runs.ApprovalRefused) as again:
        runs.approve_removals(api_settings, held.run_id, "ann@contoso.com")
    assert again.value.code == "removals_already_approved"

    after = pump(runs.start_run(api_settings, export, "manual").run_id)  # the state knows they lost it
    assert after.status == "succeeded" and after.untagged == 0 and not after.removals_held
    assert sync_counts(after) == {"added": 0, "updated": 0, "unchanged": 100}
