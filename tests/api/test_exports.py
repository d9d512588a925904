"""Segments and exports: segment names and columns checked against storage, contributors' limits, If-Match."""
from __future__ import annotations

from tests.api.conftest import export_body
from tests.conftest import API_IDENTITIES


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
