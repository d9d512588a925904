"""Contacts that left a segment lose the tag the export gave them (shared/runs/untag.py)."""
from __future__ import annotations

from shared import runs
from shared import sync
from shared.mapping import email_key
from shared.omnisend import MAX_TAG_EMAILS, OmnisendClient
from shared.ratelimit import SlidingWindowLimiter
from shared.runs.untag import removal_calls
from tests.runs.conftest import clean_segment
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
    export = export_of(["Vip"])
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
