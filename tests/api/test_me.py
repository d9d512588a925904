"""GET /api/me: the caller's identity and role, refused as every member route refuses."""
from __future__ import annotations

import pytest

from shared.auth import ADMIN_ROLE, CONTRIBUTOR_ROLE, encode_principal
from tests.conftest import API_IDENTITIES


@pytest.mark.parametrize("role", ["admin", "contributor"])
def test_me_names_the_caller_and_their_role(api, exports_api_contract, role):
    response = api("GET", "me", role=role)
    exports_api_contract.check(response, "GET", "/me")
    assert response.json() == {"identity": API_IDENTITIES[role], "role": role}


def test_a_caller_with_both_roles_is_an_admin(api, exports_api_contract):
    principal = encode_principal("both@contoso.com", [CONTRIBUTOR_ROLE, ADMIN_ROLE])
    response = api("GET", "me", role=None, headers={"X-MS-CLIENT-PRINCIPAL": principal})
    exports_api_contract.check(response, "GET", "/me")
    assert response.json() == {"identity": "both@contoso.com", "role": "admin"}


@pytest.mark.parametrize("role, status, code", [(None, 401, "unauthenticated"), ("norole", 403, "forbidden")])
def test_me_refuses_as_the_other_member_routes_do(api, exports_api_contract, role, status, code):
    response = api("GET", "me", role=role)
    exports_api_contract.check(response, "GET", "/me")
    problem = response.json()
    assert (response.status, problem["code"]) == (status, code)
    other = api("GET", "segments", role=role).json()  # a member route with a resource behind it
    assert {key: problem[key] for key in ("type", "title", "status", "detail")} == \
        {key: other[key] for key in ("type", "title", "status", "detail")}


def test_an_unreadable_principal_is_401_invalid_principal(api):
    response = api("GET", "me", role=None, headers={"X-MS-CLIENT-PRINCIPAL": "not base64!"})
    assert (response.status, response.json()["code"]) == (401, "invalid_principal")
