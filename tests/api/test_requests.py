"""Routing and request bodies: unknown routes and ids, wrong methods, every bad field at once."""
from __future__ import annotations

import json

from shared.api import MAX_BODY_BYTES, ApiRequest
from tests.api.conftest import export_body


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


def test_unknown_and_malformed_ids_are_404(api):
    for path in ("exports/nope", "exports/..%2Fconnections", "connections/a.b", "runs/nope"):
        response = api("GET", path)
        assert response.status == 404, path
        assert response.json()["code"] in {"export_not_found", "connection_not_found", "run_not_found"}
