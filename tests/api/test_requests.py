"""Routing and request bodies: unknown routes and ids, wrong methods, every bad field at once."""
from __future__ import annotations

import json

import pytest

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


# --- hostile input: a 4xx with a stable code, never a 500 ------------------------------------------


def assert_problem(response, status: int, code: str) -> dict:
    """The response is a problem of that status and code, readable as UTF-8 JSON."""
    assert (response.status, response.headers["Content-Type"]) == (status, "application/problem+json"), response.body
    problem = json.loads(response.body.decode("utf-8"))
    assert (problem["status"], problem["code"]) == (status, code)
    return problem


def connection_json(**fields) -> bytes:
    """A POST /connections body with raw JSON in the values: connection_json(contactLimit="9" * 5000)."""
    members = {"displayName": '"Webshop"', "apiKey": '"brand1-0123456789abcdef"', "consent": "true", **fields}
    return ("{" + ", ".join(f'"{name}": {value}' for name, value in members.items()) + "}").encode()


HOSTILE_BODIES = [
    (b"[" * 30_000 + b"]" * 30_000, "invalid_json", "nested deeper than 32 levels"),
    (connection_json(displayName="[" * 32 + "]" * 32), "invalid_json", "nested deeper than 32 levels"),
    (connection_json(displayName="[" * 31 + "]" * 31), "validation_failed", "displayName must be a string"),
    (connection_json(contactLimit="9" * 5000), "validation_failed", "contactLimit is a number of 5000 characters"),
    (connection_json(contactLimit="1e999"), "validation_failed", "contactLimit is a number too large"),
    (connection_json(contactLimit="NaN"), "validation_failed", "contactLimit is NaN"),
    (connection_json(displayName='"\\ud800"'), "validation_failed", "displayName is not valid Unicode"),
    (connection_json(**{"\\udc00": "1"}), "validation_failed", "\\udc00 is a name that is not valid Unicode"),
    (b'{"displayName": "\xed\xa0\x80"}', "invalid_json", "the body is not UTF-8 text"),
    ('{"displayName": "x"}'.encode("utf-16"), "invalid_json", "the body is not UTF-8 text"),
]


@pytest.mark.parametrize("body, code, says", HOSTILE_BODIES, ids=[case[2] for case in HOSTILE_BODIES])
def test_hostile_bodies_are_400_with_a_stable_code(api, sandbox, body, code, says):
    response = api("POST", "connections", body=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 400, code)
    assert says in problem["detail"]
    assert sandbox.request_log() == []  # refused before anything is sent


def test_every_too_large_number_is_listed_by_its_field(api, api_connection):
    body = export_body(api_connection().id)
    raw = json.dumps(body)[:-1] + ', "segments": [1e999], "runOn": [' + "7" * 100 + "]}"
    problem = assert_problem(api("POST", "exports", body=raw.encode()), 400, "validation_failed")
    assert [error["field"] for error in problem["errors"]] == ["segments[0]", "runOn[0]"]


@pytest.mark.parametrize("path, code", [
    ("nothing/\ud800", "route_not_found"),
    ("exports/\ud800", "export_not_found"),
    ("runs/²", "run_not_found"),
    ("runs/" + "٣" * 10, "run_not_found"),
    ("connections/" + "a" * 65, "connection_not_found"),
    ("exports/a\x00b", "export_not_found"),
    ("runs/-abc/rejects", "run_not_found"),
])
def test_path_parameters_that_cannot_be_ids_are_404_without_a_lookup(api, path, code):
    assert_problem(api("GET", path), 404, code)


def test_a_huge_path_is_not_echoed_whole(api):
    response = api("GET", "nothing/" + "x" * 100_000)
    assert_problem(response, 404, "route_not_found")
    assert len(response.body) < 2_000


@pytest.mark.parametrize("limit", ["²", "٣", "１", "9" * 5000, "-1", "1.5", " 5", "5 ", "", "0x10", "1001", "0"],
                         ids=lambda limit: ascii(limit[:8]))
def test_a_limit_that_is_not_1_to_1000_in_ascii_digits_is_400(api, api_connection, api_segments,
                                                               exports_api_contract, limit):
    export = api("POST", "exports", json_body=export_body(api_connection().id)).json()
    response = api("GET", f"exports/{export['id']}/runs", query={"limit": limit})
    exports_api_contract.check(response, "GET", "/exports/{exportId}/runs")
    problem = assert_problem(response, 400, "validation_failed")
    assert problem["errors"] == [{"field": "limit", "message": "must be a whole number from 1 to 1000"}]


def test_a_huge_content_type_is_415_and_not_echoed_whole(api):
    response = api("POST", "exports", body=b"a=b", headers={"Content-Type": "text/" + "x" * 20_000})
    assert_problem(response, 415, "unsupported_media_type")
    assert len(response.body) < 2_000
