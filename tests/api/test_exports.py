"""Segments and exports: segment names and columns checked against storage, contributors' limits, If-Match."""
from __future__ import annotations

import pytest

from tests.api.conftest import export_body
from tests.conftest import API_IDENTITIES
from tools.sample_export import DEFAULT_MAPPING


def test_segments_are_listed_with_their_columns(api, api_segments):
    from tools.sample_export import DEFAULT_MAPPING

    response = api("GET", "segments", role="contributor")
    assert response.status == 200
    segments = {item["name"]: item for item in response.json()["segments"]}
    assert set(segments) == {"Vip", "Newsletter"}
    assert set(DEFAULT_MAPPING.values()) <= set(segments["Vip"]["columns"])


def test_a_broken_segment_is_reported_and_hides_no_other(api, api_segments, segments_container):
    segments_container.upload_blob("Broken.csv", b",,\r\n1,2\r\n")
    listed = api("GET", "segments").json()
    assert {item["name"] for item in listed["segments"]} == {"Vip", "Newsletter"}
    assert len(listed["errors"]) == 1 and "Broken.csv" in listed["errors"][0]


def test_segment_names_are_matched_as_the_run_engine_does_and_saved_as_found(api, api_connection, api_segments):
    export = api("POST", "exports", json_body=export_body(api_connection().id, ["vip", "NEWSLETTER"])).json()
    assert export["segments"] == ["Vip", "Newsletter"]
    twice = api("POST", "exports", json_body=export_body(api_connection().id, ["vip", "Vip"]))
    assert (twice.status, twice.json()["code"]) == (400, "validation_failed")


def test_an_export_is_saved_not_run(api, api_settings, api_connection, api_segments, exports_api_contract):
    connection = api_connection()
    response = api("POST", "exports", json_body=export_body(connection.id, ["Vip", "Newsletter"], runOn=[]))
    exports_api_contract.check(response, "POST", "/exports")
    assert response.status == 201
    export = response.json()
    assert response.headers["Location"] == f"/api/exports/{export['id']}"
    assert (export["runOn"], export["tagContacts"], export["createdBy"]) == ([], True, API_IDENTITIES["admin"])
    assert api("GET", f"exports/{export['id']}").json() == export
    assert api("GET", f"exports/{export['id']}/runs").json() == {"runs": []}


def test_runon_defaults_to_schedule_and_upload(api, api_connection, api_segments):
    export = api("POST", "exports", json_body=export_body(api_connection().id)).json()
    assert export["runOn"] == ["schedule", "upload"]


def test_missing_segments_are_named(api, api_connection, api_segments):
    body = export_body(api_connection().id, ["Vip", "Gone", "AlsoGone"])
    problem = api("POST", "exports", json_body=body).json()
    assert (problem["status"], problem["code"], problem["missingSegments"]) == (422, "unknown_segments",
                                                                                 ["Gone", "AlsoGone"])
    assert [error["field"] for error in problem["errors"]] == ["segments[1]", "segments[2]"]


def test_a_mapping_that_does_not_bind_names_the_column_and_segment(api, api_connection, api_segments):
    body = export_body(api_connection().id, ["Newsletter"])
    body["mapping"]["firstName"] = "NoSuchColumn"
    problem = api("POST", "exports", json_body=body).json()
    assert (problem["status"], problem["code"]) == (422, "mapping_invalid")
    assert problem["errors"][0]["field"] == "segments[0]"
    assert "NoSuchColumn" in problem["detail"] and "Newsletter" in problem["detail"]


def test_a_mapping_without_email_or_with_unknown_fields_is_400(api, api_connection, api_segments):
    connection = api_connection()
    for mapping in ({"firstName": "FirstName"}, {"email": "Email", "shoeSize": "Size"}, {"email": 3}):
        problem = api("POST", "exports", json_body=export_body(connection.id, mapping=mapping)).json()
        assert (problem["status"], problem["code"]) == (400, "validation_failed"), mapping
        assert problem["errors"][0]["field"].startswith("mapping")


def test_an_unknown_connection_is_422(api, api_segments):
    problem = api("POST", "exports", json_body=export_body("no-such-connection")).json()
    assert (problem["status"], problem["code"]) == (422, "unknown_connection")
    assert problem["errors"] == [{"field": "connectionId", "message": "names no connection"}]


def test_contributors_cannot_use_admin_only_connections(api, api_connection, api_segments):
    private, shared = api_connection("admins"), api_connection("adminsAndContributors")
    refused = api("POST", "exports", role="contributor", json_body=export_body(private.id))
    assert (refused.status, refused.json()["code"]) == (403, "connection_not_usable")
    accepted = api("POST", "exports", role="contributor", json_body=export_body(shared.id))
    assert accepted.status == 201 and accepted.json()["createdBy"] == API_IDENTITIES["contributor"]
    # ... nor move an export of theirs onto one.
    moved = api("PUT", f"exports/{accepted.json()['id']}", role="contributor", json_body=export_body(private.id))
    assert (moved.status, moved.json()["code"]) == (403, "connection_not_usable")
    assert api("GET", "exports", role="contributor").json()["exports"] == [accepted.json()]


def test_put_replaces_and_honours_if_match(api, api_connection, api_segments):
    connection = api_connection()
    created = api("POST", "exports", json_body=export_body(connection.id))
    export_id, etag = created.json()["id"], created.headers["ETag"]

    replaced = api("PUT", f"exports/{export_id}", json_body=export_body(connection.id, ["Newsletter"],
                                                                        tagContacts=False),
                   headers={"If-Match": etag})
    assert replaced.status == 200, replaced.body
    body = replaced.json()
    assert (body["segments"], body["tagContacts"], body["runOn"]) == (["Newsletter"], False, ["schedule", "upload"])
    assert body["createdAt"] == created.json()["createdAt"] and body["id"] == export_id
    assert replaced.headers["ETag"] != etag

    stale = api("PUT", f"exports/{export_id}", json_body=export_body(connection.id), headers={"If-Match": etag})
    assert (stale.status, stale.json()["code"]) == (412, "precondition_failed")
    assert api("GET", f"exports/{export_id}").json()["segments"] == ["Newsletter"]


def test_a_mapping_with_huge_column_names_or_too_many_entries_is_400_and_not_echoed(api, api_connection, api_segments):
    connection = api_connection()
    huge = api("POST", "exports", json_body=export_body(connection.id, mapping={"email": "x" * 60_000}))
    assert (huge.status, huge.json()["code"]) == (400, "validation_failed")
    assert huge.json()["errors"] == [{"field": "mapping.email", "message": "must be a column name of at most 256 "
                                                                           "characters"}]
    assert len(huge.body) < 2_000
    many = api("POST", "exports", json_body=export_body(connection.id, mapping={f"c{i}": "C" for i in range(33)}))
    assert many.json()["errors"] == [{"field": "mapping", "message": "must have at most 32 entries, got 33"}]


@pytest.mark.parametrize("properties, field", [
    ({"x" * 30_000: {"column": "LoyaltyTier", "type": "string"}}, "mapping.customProperties." + "x" * 64 + "…"),
    ({"tier": {"column": "LoyaltyTier", "type": "t" * 30_000}}, "mapping.customProperties.tier.type"),
    ({"tier": {"column": "LoyaltyTier", "type": "string", "k" * 30_000: 1}}, "mapping.customProperties.tier." + "k" * 64 + "…"),
    ({"tier": {"column": "LoyaltyTier", "type": "string", **{f"f{i}": 1 for i in range(9)}}}, "mapping.customProperties.tier"),
    ({f"p{i}": {"column": "C", "type": "string"} for i in range(201)}, "mapping.customProperties"),
])
def test_hostile_custom_properties_are_bounded_and_not_echoed(api, api_connection, api_segments, properties, field):
    body = export_body(api_connection().id, mapping={**DEFAULT_MAPPING, "customProperties": properties})
    response = api("POST", "exports", json_body=body)
    assert (response.status, response.json()["code"]) == (400, "validation_failed")
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert len(response.body) < 3_000


@pytest.fixture()
def rich_segment(segments_container):
    """"Rich": a plain-CSV segment that also has the columns of EXTENDED_MAPPING (birthdate, gender, custom)."""
    from tools.sample_export import generate_profiles, write_plain_segment

    write_plain_segment(segments_container, "Rich", generate_profiles(5, seed=3, custom_fields=True))
    return "Rich"


def test_a_rich_mapping_round_trips(api, api_connection, api_segments, rich_segment, exports_api_contract):
    from tools.sample_export import EXTENDED_MAPPING

    mapping = {**EXTENDED_MAPPING, "customProperties": {
        **EXTENDED_MAPPING["customProperties"], "vip_value": {"column": "lifetimevalue", "type": "number",
                                                              "onInvalid": "omit"}}}
    created = api("POST", "exports", json_body=export_body(api_connection().id, [rich_segment], mapping=mapping))
    exports_api_contract.check(created, "POST", "/exports")
    assert created.status == 201, created.body
    stored = created.json()["mapping"]
    expected = {name: {"onInvalid": "reject", **spec} for name, spec in mapping["customProperties"].items()}
    assert stored == {**mapping, "customProperties": expected}
    read = api("GET", f"exports/{created.json()['id']}")
    exports_api_contract.check(read, "GET", "/exports/{exportId}")
    assert read.json()["mapping"] == stored
    again = api("PUT", f"exports/{created.json()['id']}", json_body=export_body(api_connection().id, [rich_segment],
                                                                              mapping=stored))
    assert again.status == 200 and again.json()["mapping"] == stored


RICH = {"column": "LoyaltyTier", "type": "string"}


@pytest.mark.parametrize("change, field", [
    ({"birthdate": 7}, "mapping.birthdate"),
    ({"gender": ["Gender"]}, "mapping.gender"),
    ({"customProperties": []}, "mapping.customProperties"),
    ({"customProperties": {"loyalty tier": RICH}}, 'mapping.customProperties["loyalty tier"]'),
    ({"customProperties": {"externalCreated": RICH}}, "mapping.customProperties.externalCreated"),
    ({"customProperties": {"Birthdate": RICH}}, "mapping.customProperties.Birthdate"),
    ({"customProperties": {"tier": RICH, "Tier": RICH}}, "mapping.customProperties.Tier"),
    ({"customProperties": {"tier": "LoyaltyTier"}}, "mapping.customProperties.tier"),
    ({"customProperties": {"tier": {"type": "string"}}}, "mapping.customProperties.tier.column"),
    ({"customProperties": {"tier": {**RICH, "column": " "}}}, "mapping.customProperties.tier.column"),
    ({"customProperties": {"tier": {**RICH, "type": "money"}}}, "mapping.customProperties.tier.type"),
    ({"customProperties": {"tier": {"column": "LoyaltyTier"}}}, "mapping.customProperties.tier.type"),
    ({"customProperties": {"tier": {**RICH, "onInvalid": "skip"}}}, "mapping.customProperties.tier.onInvalid"),
    ({"customProperties": {"tier": {**RICH, "separator": ";"}}}, "mapping.customProperties.tier.separator"),
    ({"customProperties": {"tier": {**RICH, "type": "stringList"}}}, "mapping.customProperties.tier.separator"),
    ({"customProperties": {"tier": {**RICH, "colour": "red"}}}, "mapping.customProperties.tier.colour"),
])
def test_each_refused_mapping_gives_one_field_error_at_its_path(api, api_connection, api_segments, rich_segment,
                                                              change, field):
    from tools.sample_export import EXTENDED_MAPPING

    body = export_body(api_connection().id, [rich_segment], mapping={**EXTENDED_MAPPING, **change})
    problem = api("POST", "exports", json_body=body).json()
    assert (problem["status"], problem["code"]) == (400, "validation_failed")
    assert [error["field"] for error in problem["errors"]] == [field], problem["errors"]
    assert api("GET", "exports").json()["exports"] == []


def test_every_bad_custom_property_is_named_at_once(api, api_connection, api_segments):
    mapping = {**DEFAULT_MAPPING, "gender": 1, "customProperties": {
        "a b": RICH, "tier": {"column": "LoyaltyTier", "type": "money", "onInvalid": "skip"}}}
    problem = api("POST", "exports", json_body=export_body(api_connection().id, mapping=mapping)).json()
    assert [error["field"] for error in problem["errors"]] == [
        "mapping.gender", 'mapping.customProperties["a b"]', "mapping.customProperties.tier.type",
        "mapping.customProperties.tier.onInvalid"]


def test_columns_of_birthdate_gender_and_custom_properties_must_be_in_the_segments(api, api_connection, api_segments,
                                                                                   rich_segment):
    from tools.sample_export import EXTENDED_MAPPING

    body = export_body(api_connection().id, ["Vip", rich_segment], mapping=EXTENDED_MAPPING)
    problem = api("POST", "exports", json_body=body).json()
    assert (problem["status"], problem["code"]) == (422, "mapping_invalid")
    assert [error["field"] for error in problem["errors"]] == ["segments[0]"]
    for column in ("BirthDate", "Gender", "LoyaltyTier", "PreferredStores"):
        assert column in problem["detail"]


def test_a_bad_cron_and_an_unknown_zone_are_field_errors_and_nothing_is_saved(api, api_connection, api_segments):
    body = export_body(api_connection().id, schedule={"cron": "0 0 25 * * *", "timeZone": "Europe/Vilnus"})
    problem = api("POST", "exports", json_body=body).json()
    assert (problem["status"], problem["code"]) == (400, "validation_failed")
    messages = {error["field"]: error["message"] for error in problem["errors"]}
    assert set(messages) == {"schedule.cron", "schedule.timeZone"}
    assert "hour" in messages["schedule.cron"] and "25" in messages["schedule.cron"]
    assert "'Europe/Vilnus' is not an IANA time zone name" in messages["schedule.timeZone"]
    not_an_object = api("POST", "exports", json_body=export_body(api_connection().id, schedule="daily")).json()
    assert [error["field"] for error in not_an_object["errors"]] == ["schedule"]
    assert api("GET", "exports").json()["exports"] == []


def next_times(settings, schedule) -> set:
    """nextRunAt as the API may show it now or a moment later (a due time can pass during the call)."""
    from datetime import datetime, timedelta, timezone

    from shared.schedule import app_schedule, next_run_at

    schedule = schedule or app_schedule(settings.export_schedule)
    now = datetime.now(timezone.utc)
    return {next_run_at(schedule, at).isoformat().replace("+00:00", "Z") for at in (now, now + timedelta(seconds=30))}


def test_an_export_shows_its_schedule_and_next_run(api, api_settings, api_connection, api_segments,
                                                   exports_api_contract):
    from shared.schedule import Schedule

    connection = api_connection()
    body = export_body(connection.id, runOn=["schedule"],
                       schedule={"cron": " 0  6 * * Mon ", "timeZone": "europe/vilnius"})
    problem = api("POST", "exports", json_body=body).json()
    assert problem["errors"] == [{"field": "schedule.timeZone", "message": "'europe/vilnius' is not an IANA time zone "
                                                                           "name; did you mean 'Europe/Vilnius'?"}]
    body["schedule"]["timeZone"] = "Europe/Vilnius"
    created = api("POST", "exports", json_body=body)
    exports_api_contract.check(created, "POST", "/exports")
    export = created.json()
    assert export["schedule"] == {"cron": "0 6 * * Mon", "timeZone": "Europe/Vilnius"}  # stored normalised
    assert export["nextRunAt"] in next_times(api_settings, Schedule.parse("0 6 * * Mon", "Europe/Vilnius"))

    following = api("POST", "exports", json_body=export_body(connection.id, schedule=None, tagContacts=False)).json()
    assert following["schedule"] is None
    assert following["nextRunAt"] in next_times(api_settings, None)  # the app's EXPORT_SCHEDULE, in UTC
    on_demand = api("POST", "exports", json_body=export_body(connection.id, runOn=["upload"], tagContacts=False,
                                                             schedule=body["schedule"]))
    assert on_demand.json()["nextRunAt"] is None  # runOn without "schedule": the timer never starts it

    listed = api("GET", "exports")
    exports_api_contract.check(listed, "GET", "/exports")
    shown = {item["id"]: item["nextRunAt"] for item in listed.json()["exports"]}
    assert shown == {export["id"]: export["nextRunAt"], following["id"]: following["nextRunAt"],
                     on_demand.json()["id"]: None}
    dropped = api("PUT", f"exports/{export['id']}", json_body={**body, "schedule": None})
    exports_api_contract.check(dropped, "PUT", "/exports/{exportId}")
    assert dropped.json()["schedule"] is None and dropped.json()["nextRunAt"] in next_times(api_settings, None)


# --- tag names: the export's own, one owner per tag on a connection ----------------------------------


def test_tags_name_the_exports_segments_and_are_stored_under_their_names(api, api_connection, api_segments,
                                                                          exports_api_contract):
    connection = api_connection()
    body = export_body(connection.id, ["Vip", "Newsletter"], tags={"vip": "  VIP customers ", "Newsletter": "Newsletter"})
    created = api("POST", "exports", json_body=body)
    exports_api_contract.check(created, "POST", "/exports")
    # Stored under the segment's name as found, trimmed; an entry naming the segment's own name is the default.
    assert created.status == 201 and created.json()["tags"] == {"Vip": "VIP customers"}
    assert api("GET", f"exports/{created.json()['id']}").json()["tags"] == {"Vip": "VIP customers"}


@pytest.mark.parametrize("tags, errors", [
    ({"Gone": "X"}, [("tags.Gone", "is not one of the export's segments")]),
    ({"vip": "A", "VIP": "B"}, [("tags.VIP", "names the same segment as tags.vip")]),
    ({"Vip": "  "}, [("tags.Vip", "must be 1 to 100 characters, not blank")]),
    ({"Vip": "x" * 101}, [("tags.Vip", "must be 1 to 100 characters, not blank")]),
    ({"Vip": 3}, [("tags.Vip", "must be a string, got a number")]),
    (["Vip"], [("tags", "must be an object of segment name -> tag name, got a list")]),
])
def test_a_bad_tags_entry_is_a_field_error_at_its_segment_and_nothing_is_saved(api, api_connection, api_segments,
                                                                              tags, errors):
    problem = api("POST", "exports", json_body=export_body(api_connection().id, tags=tags)).json()
    assert (problem["status"], problem["code"]) == (400, "validation_failed")
    assert [(error["field"], error["message"]) for error in problem["errors"]] == errors
    assert api("GET", "exports").json()["exports"] == []


def test_two_exports_on_one_connection_cannot_set_the_same_tag(api, api_connection, api_segments,
                                                               exports_api_contract):
    connection, other_connection = api_connection(), api_connection()
    vips = api("POST", "exports", json_body=export_body(connection.id, ["Vip"], displayName="VIPs")).json()

    # Another segment named to the same tag, or the same segment under its default tag: refused.
    renamed = api("POST", "exports", json_body=export_body(connection.id, ["Newsletter"], tags={"Newsletter": "Vip"}))
    exports_api_contract.check(renamed, "POST", "/exports")
    problem = renamed.json()
    assert (problem["status"], problem["code"], problem["tag"], problem["exportId"]) == (409, "tag_in_use", "Vip",
                                                                                        vips["id"])
    assert "'VIPs'" in problem["detail"] and "'Vip'" in problem["detail"]
    assert problem["errors"] == [{"field": "tags.Newsletter", "message": "tag 'Vip' is set by export 'VIPs'"}]
    same = api("POST", "exports", json_body=export_body(connection.id, ["Newsletter", "Vip"])).json()
    assert (same["code"], same["errors"][0]["field"]) == ("tag_in_use", "tags.Vip")  # where the fix goes

    # Not tagging, another tag, or another connection: fine.
    untagged = api("POST", "exports", json_body=export_body(connection.id, ["Vip"], tagContacts=False))
    other_tag = api("POST", "exports", json_body=export_body(connection.id, ["Vip"], tags={"Vip": "VIP 2"}))
    elsewhere = api("POST", "exports", json_body=export_body(other_connection.id, ["Vip"]))
    assert (untagged.status, other_tag.status, elsewhere.status) == (201, 201, 201)

    # PUT: an export keeps its own tags, but cannot take another's (by renaming or by starting to tag).
    kept = api("PUT", f"exports/{vips['id']}", json_body=export_body(connection.id, ["Vip"], displayName="VIPs"))
    assert kept.status == 200
    taken = api("PUT", f"exports/{vips['id']}", json_body=export_body(connection.id, ["Vip"], tags={"Vip": "VIP 2"}))
    exports_api_contract.check(taken, "PUT", "/exports/{exportId}")
    assert (taken.status, taken.json()["code"], taken.json()["exportId"]) == (409, "tag_in_use", other_tag.json()["id"])
    starts = api("PUT", f"exports/{untagged.json()['id']}", json_body=export_body(connection.id, ["Vip"]))
    assert (starts.status, starts.json()["tag"], starts.json()["exportId"]) == (409, "Vip", vips["id"])
    assert api("GET", f"exports/{vips['id']}").json()["tags"] == {}  # refused changes are not saved
    moved = api("PUT", f"exports/{vips['id']}", json_body=export_body(connection.id, ["Vip"], tags={"Vip": "VIP 3"}))
    assert moved.status == 200 and moved.json()["tags"] == {"Vip": "VIP 3"}
    assert api("PUT", f"exports/{untagged.json()['id']}", json_body=export_body(connection.id, ["Vip"])).status == 200


def test_renaming_a_tag_moves_it_on_the_next_run_and_spares_a_hand_made_tag_of_the_old_name(
        api, api_connection, segments_container, sandbox, omnisend_key, finish_run):
    from tools.sample_export import generate_profiles, write_plain_segment

    profiles = generate_profiles(30, seed=5, bad_share=0.0, duplicate_share=0.0)
    write_plain_segment(segments_container, "Vip", profiles)
    members = {profiles.expected(i).email for i in range(30)}
    connection = api_connection(api_key=omnisend_key, requests_per_minute=50_000, tag_requests_per_minute=50_000)
    export = api("POST", "exports", json_body=export_body(connection.id, ["Vip"], runOn=[])).json()
    first = finish_run(api("POST", f"exports/{export['id']}/runs").json()["runId"])
    assert first["status"] == "succeeded"
    assert {email for email, tags in sandbox.all_tags().items() if "Vip" in tags} == members
    sandbox.tag_by_hand("picked.by.hand@example.com", add=["Vip", "Spring"])  # a marketer's, same name

    renamed = api("PUT", f"exports/{export['id']}",
                  json_body=export_body(connection.id, ["Vip"], runOn=[], tags={"Vip": "VIP customers"}))
    assert renamed.status == 200 and renamed.json()["tags"] == {"Vip": "VIP customers"}
    # Until the next run has taken it off, the old tag is still the export's: no other export may take it.
    early = api("POST", "exports", json_body=export_body(connection.id, ["Vip"], runOn=[]))
    assert (early.status, early.json()["code"], early.json()["exportId"]) == (409, "tag_in_use", export["id"])
    assert "still owns tag 'Vip'" in early.json()["detail"]
    second = finish_run(api("POST", f"exports/{export['id']}/runs").json()["runId"])

    assert second["status"] == "succeeded" and second["untagged"] == len(members)
    assert second["counts"]["sent"] == len(members)  # the new tag only: the fields did not change
    tags = sandbox.all_tags()
    assert {email for email, found in tags.items() if "VIP customers" in found} == members
    assert all("Vip" not in tags[email] for email in members)
    assert tags["picked.by.hand@example.com"] == ["Spring", "Vip"]

    third = finish_run(api("POST", f"exports/{export['id']}/runs").json()["runId"])
    assert (third["status"], third["counts"]["sent"], third["untagged"]) == ("succeeded", 0, 0)
    assert sandbox.all_tags() == tags
    assert api("POST", "exports", json_body=export_body(connection.id, ["Vip"], runOn=[])).status == 201  # now free
