"""Authorization matrix: every route x {no principal, no app role, contributor, admin}.

Each route is called for real (Azurite, the Omnisend sandbox, the run engine) on a small world with an
admins-only and a contributors-usable connection, an export and a run on each; every answer must also
be a status and body the OpenAPI document gives for that route.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.api import ROUTES
from shared.documents import DocumentStore

ROLES = (None, "norole", "contributor", "admin")


@dataclass
class World:
    ids: dict[str, str]
    bodies: dict[str, dict]


@pytest.fixture()
def build_world(api_settings, api_connection, api_segments, omnisend_key):
    from shared import runs
    from tools.sample_export import DEFAULT_MAPPING

    def build() -> World:
        store = DocumentStore(api_settings)
        # Fresh settings per world would be cleaner but slower; the unique ids keep worlds apart.
        private, shared, unused = (api_connection("admins"), api_connection("adminsAndContributors"),
                                   api_connection("admins"))

        def export_body(connection_id: str) -> dict:  # untagged: several on one connection set no tag twice
            return {"displayName": "Matrix", "connectionId": connection_id, "segments": ["Vip"],
                    "mapping": dict(DEFAULT_MAPPING), "runOn": [], "tagContacts": False}

        from tests.api.conftest import ApiCaller

        admin = ApiCaller(api_settings)
        private_export = admin("POST", "exports", json_body=export_body(private.id)).json()["id"]
        shared_export = admin("POST", "exports", json_body=export_body(shared.id)).json()["id"]
        # Exports without a run, for starting one.
        private_idle = admin("POST", "exports", json_body=export_body(private.id)).json()["id"]
        shared_idle = admin("POST", "exports", json_body=export_body(shared.id)).json()["id"]
        private_run = runs.start_run(api_settings, store.get_export(private_export), "manual").run_id
        shared_run = runs.start_run(api_settings, store.get_export(shared_export), "manual").run_id
        return World(
            ids=dict(private=private.id, shared=shared.id, unused=unused.id, private_export=private_export,
                     shared_export=shared_export, private_idle=private_idle,
                     shared_idle=shared_idle, private_run=private_run, shared_run=shared_run),
            bodies=dict(connection={"displayName": "New", "apiKey": omnisend_key, "consent": True},
                        export_private=export_body(private.id), export_shared=export_body(shared.id),
                        run_preview={"mode": "preview"}),
        )

    return build


# (method, route template, concrete path, body, expected status for: no principal, contributor, admin)
CASES = [
    ("GET", "/health", "health", None, (200, 200, 200)),
    ("GET", "/openapi.json", "openapi.json", None, (200, 200, 200)),
    ("GET", "/me", "me", None, (401, 200, 200)),
    ("GET", "/connections", "connections", None, (401, 200, 200)),
    ("POST", "/connections", "connections", "connection", (401, 403, 201)),
    ("GET", "/connections/{connectionId}", "connections/{shared}", None, (401, 200, 200)),
    ("GET", "/connections/{connectionId}", "connections/{private}", None, (401, 403, 200)),
    ("DELETE", "/connections/{connectionId}", "connections/{unused}", None, (401, 403, 204)),
    ("GET", "/segments", "segments", None, (401, 200, 200)),
    ("GET", "/exports", "exports", None, (401, 200, 200)),
    ("POST", "/exports", "exports", "export_shared", (401, 201, 201)),
    ("POST", "/exports", "exports", "export_private", (401, 403, 201)),
    ("GET", "/exports/{exportId}", "exports/{shared_export}", None, (401, 200, 200)),
    ("GET", "/exports/{exportId}", "exports/{private_export}", None, (401, 403, 200)),
    ("PUT", "/exports/{exportId}", "exports/{shared_export}", "export_shared", (401, 200, 200)),
    ("PUT", "/exports/{exportId}", "exports/{private_export}", "export_private", (401, 403, 200)),
    ("DELETE", "/exports/{exportId}", "exports/{shared_export}", None, (401, 204, 204)),
    ("DELETE", "/exports/{exportId}", "exports/{private_export}", None, (401, 403, 204)),
    ("POST", "/exports/{exportId}/runs", "exports/{shared_idle}/runs", None, (401, 202, 202)),
    ("POST", "/exports/{exportId}/runs", "exports/{private_idle}/runs", None, (401, 403, 202)),
    ("POST", "/exports/{exportId}/runs", "exports/{shared_export}/runs", None, (401, 409, 409)),
    ("POST", "/exports/{exportId}/runs", "exports/{shared_idle}/runs", "run_preview", (401, 202, 202)),
    ("POST", "/exports/{exportId}/runs", "exports/{private_idle}/runs", "run_preview", (401, 403, 202)),
    ("GET", "/exports/{exportId}/runs", "exports/{shared_export}/runs", None, (401, 200, 200)),
    ("GET", "/exports/{exportId}/runs", "exports/{private_export}/runs", None, (401, 403, 200)),
    ("GET", "/runs/{runId}", "runs/{shared_run}", None, (401, 200, 200)),
    ("GET", "/runs/{runId}", "runs/{private_run}", None, (401, 403, 200)),
    ("GET", "/runs/{runId}/rejects", "runs/{shared_run}/rejects", None, (401, 200, 200)),
    ("GET", "/runs/{runId}/rejects", "runs/{private_run}/rejects", None, (401, 403, 200)),
    ("GET", "/runs/{runId}/preview", "runs/{shared_run}/preview", None, (401, 404, 404)),  # not a preview
    ("GET", "/runs/{runId}/preview", "runs/{private_run}/preview", None, (401, 403, 404)),
    ("POST", "/runs/{runId}/cancel", "runs/{shared_run}/cancel", None, (401, 200, 200)),
    ("POST", "/runs/{runId}/cancel", "runs/{private_run}/cancel", None, (401, 403, 200)),
    # The world's runs are still queued: nothing held yet (the approval itself: tests/api/test_runs.py).
    ("POST", "/runs/{runId}/approve-removals", "runs/{shared_run}/approve-removals", None, (401, 409, 409)),
    ("POST", "/runs/{runId}/approve-removals", "runs/{private_run}/approve-removals", None, (401, 403, 409)),
]


def expected_statuses(case) -> dict[str | None, int]:
    anonymous, contributor, admin = case[4]
    public = anonymous == 200
    return {None: anonymous, "norole": 200 if public else 403, "contributor": contributor, "admin": admin}


def test_the_matrix_covers_every_route():
    assert {(case[0], case[1]) for case in CASES} == {(item.method, item.template) for item in ROUTES}


@pytest.mark.parametrize("case", CASES, ids=[f"{case[0]} {case[2]}" for case in CASES])
def test_route_by_role(case, api, build_world, exports_api_contract):
    method, template, path, body_name, _ = case
    mutates = method != "GET"
    world = None
    outcomes = {}
    for role, expected in expected_statuses(case).items():
        if world is None or mutates:
            world = build_world()  # a fresh world for every role when the call changes it
        response = api(method, path.format(**world.ids), role=role,
                       json_body=world.bodies[body_name] if body_name else None)
        exports_api_contract.check(response, method, template)
        outcomes[role] = (response.status, expected)
    wrong = {role: got for role, (got, expected) in outcomes.items() if got != expected}
    assert wrong == {}, f"{method} {path}: got {wrong}, expected {expected_statuses(case)}"
