"""The HTTP API's rules, through shared.api.handle, against Azurite and the Omnisend sandbox."""
from __future__ import annotations

import base64
import dataclasses
import json
import logging

import pytest

from shared.api import MAX_BODY_BYTES, ApiRequest
from shared.auth import ADMIN_ROLE, CONTRIBUTOR_ROLE, PrincipalError, encode_principal, parse_principal
from shared.documents import DocumentStore
from shared.keystore import SecretNotFoundError, secret_store
from shared.storage import container
from tests.conftest import API_IDENTITIES


@pytest.fixture()
def api_settings(settings, sandbox):
    """The API of these tests checks keys against the Omnisend sandbox."""
    return dataclasses.replace(settings, omnisend_api_url=sandbox.url)


def export_body(connection_id: str, segments=("Vip",), **changes) -> dict:
    from tools.sample_export import DEFAULT_MAPPING

    body = {"displayName": "VIPs to Omnisend", "connectionId": connection_id, "segments": list(segments),
            "mapping": dict(DEFAULT_MAPPING)}
    return {**body, **changes}


def connection_body(api_key: str, **changes) -> dict:
    return {"displayName": "Webshop", "apiKey": api_key, "consent": True, **changes}


def b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.b64encode(raw).decode()


# --- who is calling ----------------------------------------------------------------------------


def test_no_principal_is_401_with_a_problem_body(api):
    response = api("GET", "connections", role=None)
    assert response.status == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "unauthenticated" and problem["status"] == 401
    assert problem["type"].endswith(":unauthenticated") and problem["instance"] == "/api/connections"


@pytest.mark.parametrize("header, says", [
    ("%%% not base64 %%%", "not base64"),
    (b64(b"\xff\xfe"), "not JSON"),
    (b64([1, 2]), "JSON object"),
    (b64({"auth_typ": "aad"}), "'claims'"),
    (b64({"claims": [{"typ": "roles", "val": 7}]}), "claims[0]"),
    (b64({"claims": [{"typ": "roles", "val": ADMIN_ROLE}]}), "naming the caller"),
])
def test_an_unreadable_principal_is_401_saying_what_is_wrong(api, header, says):
    response = api("GET", "connections", role=None, headers={"X-MS-CLIENT-PRINCIPAL": header})
    assert response.status == 401
    assert response.json()["code"] == "invalid_principal"
    assert says in response.json()["detail"]


@pytest.mark.parametrize("auth_enabled, status", [(None, 401), ("False", 401), ("True", 200)])
def test_in_app_service_a_principal_counts_only_while_app_service_authentication_is_on(settings, auth_enabled, status):
    from shared.settings import Settings
    from tests.conftest import ApiCaller

    environment = {"AzureWebJobsStorage": settings.storage.connection_string,
                   "STATE_CONTAINER": settings.state_container, "WEBSITE_SITE_NAME": "omnisend-export-app"}
    if auth_enabled is not None:
        environment["WEBSITE_AUTH_ENABLED"] = auth_enabled
    response = ApiCaller(Settings.from_env(environment))("GET", "exports", role="admin")
    assert response.status == status
    if status == 401:
        assert "App Service Authentication is off" in response.json()["detail"]


def test_a_principal_without_an_app_role_is_403(api):
    response = api("GET", "exports", role="norole")
    assert (response.status, response.json()["code"]) == (403, "forbidden")


def test_roles_come_from_the_principals_role_typ_and_names_from_name_typ():
    role_typ = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    principal = {"auth_typ": "aad", "name_typ": "upn", "role_typ": "custom-role",
                 "claims": [{"typ": "upn", "val": "ops@contoso.com"}, {"typ": "custom-role", "val": ADMIN_ROLE},
                            {"typ": role_typ, "val": CONTRIBUTOR_ROLE}, {"typ": "groups", "val": "Exports.Admin2"}]}
    caller = parse_principal(b64(principal))
    assert caller.identity == "ops@contoso.com"
    assert caller.roles == {ADMIN_ROLE, CONTRIBUTOR_ROLE} and caller.is_admin


def test_a_role_in_another_claim_type_grants_nothing():
    principal = {"claims": [{"typ": "name", "val": "x"}, {"typ": "groups", "val": ADMIN_ROLE}]}
    assert not parse_principal(b64(principal)).is_member
    with pytest.raises(PrincipalError):
        parse_principal(b64({"claims": []}))


def test_encode_and_parse_round_trip():
    caller = parse_principal(encode_principal("a@b.c", [CONTRIBUTOR_ROLE]))
    assert (caller.identity, caller.is_admin, caller.is_member) == ("a@b.c", False, True)


# --- routing and bodies ------------------------------------------------------------------------


def test_unknown_routes_are_404_and_wrong_methods_405_with_allow(api):
    missing = api("GET", "nothing/here")
    assert (missing.status, missing.json()["code"]) == (404, "route_not_found")
    wrong = api("PATCH", "exports")
    assert (wrong.status, wrong.json()["code"]) == (405, "method_not_allowed")
    assert wrong.headers["Allow"] == "POST, GET"


def test_every_bad_field_is_listed_at_once(api, api_connection):
    connection = api_connection()
    body = export_body(connection.id, runOn=["daily"], tagContacts="yes", colour="red")
    body["segments"] = "Vip"
    del body["displayName"]
    response = api("POST", "exports", json_body=body)
    assert response.status == 400
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert {error["field"] for error in problem["errors"]} == {"colour", "displayName", "segments", "runOn[0]",
                                                                "tagContacts"}
    messages = {error["field"]: error["message"] for error in problem["errors"]}
    assert messages["runOn[0]"] == 'must be one of "schedule", "upload", got "daily"'
    assert messages["colour"] == "is not a known field"


def test_wrong_types_are_named(api):
    body = {"displayName": 5, "apiKey": ["k"], "consent": "yes", "contactLimit": 1.5, "requestsPerMinute": True,
            "usableBy": "everyone"}
    problem = api("POST", "connections", json_body=body).json()
    assert problem["code"] == "validation_failed"
    messages = {error["field"]: error["message"] for error in problem["errors"]}
    assert messages == {
        "displayName": "must be a string, got a number",
        "apiKey": "must be a string, got a list",
        "consent": "must be true or false, got a string",
        "contactLimit": "must be a whole number, got a number",
        "requestsPerMinute": "must be a whole number, got a boolean",
        "usableBy": 'must be one of "admins", "adminsAndContributors", got "everyone"',
    }


def test_bodies_over_the_cap_are_413(api):
    body = json.dumps({"displayName": "x" * MAX_BODY_BYTES}).encode()
    response = api("POST", "exports", body=body, headers={"Content-Type": "application/json"})
    assert (response.status, response.json()["code"]) == (413, "body_too_large")


def test_not_json_is_400_without_echoing_the_body(api):
    body = b'{"apiKey": "brand1-supersecretvalue", '
    response = api("POST", "connections", body=body, headers={"Content-Type": "application/json"})
    assert (response.status, response.json()["code"]) == (400, "invalid_json")
    assert b"supersecretvalue" not in response.body
    assert api("POST", "connections", body=b"[]").json()["detail"] == "the body must be a JSON object, got a list"


def test_a_form_body_is_415(api):
    response = api("POST", "exports", body=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (response.status, response.json()["code"]) == (415, "unsupported_media_type")


def test_a_request_repr_never_shows_the_body_or_header_values():
    request = ApiRequest("POST", "connections", {"X-MS-CLIENT-PRINCIPAL": "principal-value", "x-functions-key": "fk"},
                         {}, b'{"apiKey": "brand1-secret"}')
    assert "brand1-secret" not in repr(request) and "principal-value" not in repr(request) and "fk" not in repr(request)
    assert request.headers["x-ms-client-principal"] == "principal-value"


# --- connections -------------------------------------------------------------------------------


def test_creating_a_connection_checks_the_key_stores_it_in_the_secret_store_only(
        api, api_settings, sandbox, omnisend_key, caplog):
    caplog.set_level(logging.DEBUG)
    response = api("POST", "connections", json_body=connection_body(omnisend_key, contactLimit=1000))
    assert response.status == 201, response.body
    created = response.json()
    assert response.headers["Location"] == f"/api/connections/{created['id']}"
    assert created["exportUser"] == API_IDENTITIES["admin"] == created["createdBy"]
    assert (created["usableBy"], created["contactLimit"], created["requestsPerMinute"]) == ("admins", 1000, 400)

    stored = DocumentStore(api_settings).get_connection(created["id"])
    assert secret_store(api_settings).get(stored.secret_name) == omnisend_key
    raw_document = container(api_settings, api_settings.state_container).download_blob(
        f"connections/{created['id']}.json").readall().decode()
    secret_part = omnisend_key.split("-", 1)[1]
    for text in (response.body.decode(), raw_document, caplog.text):
        assert secret_part not in text
    # Checked without writing: the sandbox saw reads only.
    assert {record.method for record in sandbox.request_log()} == {"GET"}


@pytest.mark.parametrize("consent", [False, None])
def test_a_connection_needs_consent(api, api_settings, sandbox, omnisend_key, consent):
    body = connection_body(omnisend_key, consent=consent)
    if consent is None:
        del body["consent"]
    response = api("POST", "connections", json_body=body)
    assert (response.status, response.json()["code"]) == (422, "consent_required")
    assert response.json()["errors"] == [{"field": "consent", "message": "must be true"}]
    assert DocumentStore(api_settings).list_connections() == []
    assert sandbox.request_log() == []


@pytest.mark.parametrize("key_kind", ["unknown", "retired", "no_read_scope"])
def test_a_key_omnisend_refuses_is_422_and_nothing_is_stored(api, api_settings, sandbox, key_kind, tmp_path):
    key = {
        "unknown": lambda: "brand1-" + "0" * 32,
        "retired": lambda: sandbox.add_key("brand1", retired=True),
        "no_read_scope": lambda: sandbox.add_key("brand1", scopes=["contacts.write"]),
    }[key_kind]()
    response = api("POST", "connections", json_body=connection_body(key))
    assert (response.status, response.json()["code"]) == (422, "omnisend_rejected_key"), response.body
    assert key.split("-", 1)[1] not in response.body.decode()
    assert DocumentStore(api_settings).list_connections() == []
    assert not (tmp_path / "secrets").exists() or not any((tmp_path / "secrets").iterdir())


def test_an_unreachable_omnisend_is_502(api, api_settings, omnisend_key):
    from tools.azurite import free_port

    api.settings = dataclasses.replace(api_settings, omnisend_api_url=f"http://127.0.0.1:{free_port()}/api")
    response = api("POST", "connections", json_body=connection_body(omnisend_key))
    assert (response.status, response.json()["code"]) == (502, "omnisend_unreachable")


def test_contributors_see_only_connections_usable_by_them_and_only_id_name_type(api, api_connection):
    shared = api_connection("adminsAndContributors")
    private = api_connection("admins")
    listed = api("GET", "connections", role="contributor").json()["connections"]
    assert listed == [{"id": shared.id, "displayName": shared.display_name, "type": "omnisend"}]
    assert api("GET", f"connections/{private.id}", role="contributor").json()["code"] == "connection_not_usable"
    assert {item["id"] for item in api("GET", "connections").json()["connections"]} == {shared.id, private.id}
    assert api("GET", f"connections/{shared.id}").json()["exportUser"] == API_IDENTITIES["admin"]


def test_a_connection_in_use_cannot_be_deleted_and_deleting_it_deletes_its_key(
        api, api_settings, api_connection, api_segments):
    connection = api_connection()
    export = api("POST", "exports", json_body=export_body(connection.id)).json()

    in_use = api("DELETE", f"connections/{connection.id}")
    assert (in_use.status, in_use.json()["code"], in_use.json()["exportIds"]) == (409, "connection_in_use",
                                                                                 [export["id"]])
    assert api("DELETE", f"exports/{export['id']}").status == 204
    assert api("DELETE", f"connections/{connection.id}").status == 204
    assert api("GET", f"connections/{connection.id}").status == 404
    with pytest.raises(SecretNotFoundError):
        secret_store(api_settings).get(connection.secret_name)


# --- segments and exports ----------------------------------------------------------------------


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


def test_unknown_and_malformed_ids_are_404(api):
    for path in ("exports/nope", "exports/..%2Fconnections", "connections/a.b", "runs/nope"):
        response = api("GET", path)
        assert response.status == 404, path
        assert response.json()["code"] in {"export_not_found", "connection_not_found", "run_not_found"}


# --- runs --------------------------------------------------------------------------------------


def test_runs_start_list_read_cancel_and_refuse_a_second_run(api, api_connection, api_segments,
                                                             exports_api_contract):
    export = api("POST", "exports", json_body=export_body(api_connection().id, runOn=[])).json()

    started = api("POST", f"exports/{export['id']}/runs")
    exports_api_contract.check(started, "POST", "/exports/{exportId}/runs")
    assert started.status == 202
    run_id = started.json()["runId"]
    assert started.json() == {"runId": run_id, "status": "queued"}
    assert started.headers["Location"] == f"/api/runs/{run_id}"

    again = api("POST", f"exports/{export['id']}/runs", role="admin")
    assert (again.status, again.json()["code"], again.json()["runId"]) == (409, "run_in_progress", run_id)

    run = api("GET", started.headers["Location"])
    exports_api_contract.check(run, "GET", "/runs/{runId}")
    assert (run.json()["exportId"], run.json()["trigger"]) == (export["id"], "manual")

    cancelled = api("POST", f"runs/{run_id}/cancel")
    exports_api_contract.check(cancelled, "POST", "/runs/{runId}/cancel")
    assert cancelled.json()["status"] == "cancelled"

    second = api("POST", f"exports/{export['id']}/runs").json()["runId"]
    listed = api("GET", f"exports/{export['id']}/runs")
    exports_api_contract.check(listed, "GET", "/exports/{exportId}/runs")
    assert [item["runId"] for item in listed.json()["runs"]] == [second, run_id]
    assert [item["runId"] for item in api("GET", f"exports/{export['id']}/runs",
                                          query={"limit": "1"}).json()["runs"]] == [second]
    assert api("GET", f"exports/{export['id']}/runs", query={"limit": "0"}).status == 400

    rejects = api("GET", f"runs/{run_id}/rejects")
    assert rejects.status == 200 and rejects.headers["Content-Type"].startswith("text/csv")
    assert rejects.body.splitlines()[0]  # a header row, even with no rejects


def test_deleting_an_export_cancels_its_run(api, api_connection, api_segments):
    export = api("POST", "exports", json_body=export_body(api_connection().id)).json()
    run_id = api("POST", f"exports/{export['id']}/runs").json()["runId"]
    assert api("DELETE", f"exports/{export['id']}").status == 204
    assert api("GET", f"runs/{run_id}").json()["status"] == "cancelled"
    assert api("GET", f"exports/{export['id']}").status == 404
