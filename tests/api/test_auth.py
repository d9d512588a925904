"""Who is calling: the App Service Authentication principal, its roles, and the 401s and 403s."""
from __future__ import annotations

import pytest

from shared.auth import ADMIN_ROLE, CONTRIBUTOR_ROLE, PrincipalError, encode_principal, parse_principal
from tests.api.conftest import b64


def test_no_principal_is_401_with_a_problem_body(api):
    response = api("GET", "connections", role=None)
    assert response.status == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "unauthenticated" and problem["status"] == 401
    assert problem["type"].endswith(":unauthenticated") and problem["instance"] == "/api/connections"


UNREADABLE_PRINCIPALS = [
    ("%%% not base64 %%%", "not base64"),
    (b64(b"\xff\xfe"), "not JSON"),
    (b64([1, 2]), "JSON object"),
    (b64({"auth_typ": "aad"}), "'claims'"),
    (b64({"claims": [{"typ": "roles", "val": 7}]}), "claims[0]"),
    (b64({"claims": [{"typ": "roles", "val": ADMIN_ROLE}]}), "naming the caller"),
    # Hostile principals: nesting, numbers and lone surrogates json.loads chokes on, and names that
    # would be logged and stored as they are.
    (b64(b'{"claims": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"), "nested deeper than 32 levels"),
    (b64(b'{"claims": [], "exp": ' + b"9" * 5000 + b"}"), "exp is a number of 5000 characters"),
    (b64(b'{"claims": [{"typ": "name", "val": "\\ud800"}]}'), "claims[0].val is not valid Unicode"),
    (b64({"claims": [{"typ": "name", "val": "x" * 257}]}), "more than 256 characters"),
    (b64({"claims": [{"typ": "name", "val": "admin@contoso.com\nforged log line"}]}), "control characters"),
]


@pytest.mark.parametrize("header, says", UNREADABLE_PRINCIPALS, ids=[says for _, says in UNREADABLE_PRINCIPALS])
def test_an_unreadable_principal_is_401_saying_what_is_wrong(api, header, says):
    assert len(header) <= 32 * 1024  # within the header size the API reads at all
    response = api("GET", "connections", role=None, headers={"X-MS-CLIENT-PRINCIPAL": header})
    assert response.status == 401
    assert response.json()["code"] == "invalid_principal"
    assert says in response.json()["detail"]


def test_a_principal_name_header_with_control_characters_is_401(api):
    header = b64({"claims": [{"typ": "roles", "val": ADMIN_ROLE}]})
    response = api("GET", "connections", role=None, headers={"X-MS-CLIENT-PRINCIPAL": header,
                                                              "X-MS-CLIENT-PRINCIPAL-NAME": "ops\r\nforged"})
    assert (response.status, response.json()["code"]) == (401, "invalid_principal")


@pytest.mark.parametrize("auth_enabled, status", [(None, 401), ("False", 401), ("True", 200)])
def test_in_app_service_a_principal_counts_only_while_app_service_authentication_is_on(settings, auth_enabled, status):
    from shared.settings import Settings
    from tests.api.conftest import ApiCaller

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
