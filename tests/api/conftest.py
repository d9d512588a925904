"""Fixtures of the HTTP API tests: callers by role, the OpenAPI document as a contract, sample segments.

The stored connections they use (`api_connection`) and the callers' identities (`API_IDENTITIES`) are
in tests/conftest.py, shared with the run engine's tests.
"""
from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import API_IDENTITIES


@pytest.fixture()
def api_settings(settings, sandbox):
    """The API of these tests checks keys against the Omnisend sandbox."""
    import dataclasses

    return dataclasses.replace(settings, omnisend_api_url=sandbox.url)


class ApiCaller:
    """Calls `shared.api.handle` in-process as a given role: "admin", "contributor", "norole" or None."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, method: str, path: str, *, role: str | None = "admin", json_body=None,
                 body: bytes | None = None, headers: dict[str, str] | None = None,
                 query: dict[str, str] | None = None):
        import json

        from shared.api import ApiRequest, handle
        from shared.auth import ADMIN_ROLE, CONTRIBUTOR_ROLE, encode_principal

        all_headers = {}
        if role is not None:
            roles = {"admin": [ADMIN_ROLE], "contributor": [CONTRIBUTOR_ROLE], "norole": []}[role]
            all_headers["X-MS-CLIENT-PRINCIPAL"] = encode_principal(API_IDENTITIES[role], roles)
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        request = ApiRequest(method, path.removeprefix("/api/").lstrip("/"), all_headers, query or {}, body or b"")
        return handle(self.settings, request)


@pytest.fixture()
def api(api_settings) -> ApiCaller:
    return ApiCaller(api_settings)


class OpenApiContract:
    """openapi/exports-api.json, for checking real responses against what it documents."""

    def __init__(self, document: dict) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.document = document
        resource = Resource(contents=_nullable_to_json_schema(document), specification=DRAFT202012)
        self._registry = Registry().with_resource("urn:exports-api", resource)
        self._validator_class = Draft202012Validator

    def operation(self, method: str, template: str) -> dict:
        return self.document["paths"][template][method.lower()]

    def errors(self, schema: dict, instance) -> list[str]:
        """Messages of `instance` not matching `schema` (which may $ref into the document)."""
        schema = _nullable_to_json_schema(schema)
        if "$ref" in schema:
            schema = {"$ref": "urn:exports-api" + schema["$ref"]}
        validator = self._validator_class(schema, registry=self._registry)
        return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(instance)]

    def check(self, response, method: str, template: str) -> None:
        """Fail unless the status is documented for the route and the body matches its schema."""
        import json

        responses = self.operation(method, template)["responses"]
        assert str(response.status) in responses, f"{method} {template} answered undocumented {response.status}"
        documented = responses[str(response.status)]
        if "$ref" in documented:
            documented = self.document["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
        content = documented.get("content")
        if not content:
            assert response.body == b"", f"{method} {template} {response.status} must have no body"
            return
        media_type = response.headers["Content-Type"].split(";")[0]
        assert media_type in content, f"{method} {template} {response.status} answered {media_type}"
        if media_type.endswith("json"):
            problems = self.errors(content[media_type]["schema"], json.loads(response.body))
            assert not problems, f"{method} {template} {response.status}: {problems}"


def _nullable_to_json_schema(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema (`anyOf` with null), recursively."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") is True else converted


@pytest.fixture(scope="session")
def exports_api_contract() -> OpenApiContract:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "openapi" / "exports-api.json"
    return OpenApiContract(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture()
def api_segments(segments_container):
    """Two small plain-CSV segments, "Vip" and "Newsletter", written with tools/sample_export.py:
    {name: profiles}. Map them with tools.sample_export.DEFAULT_MAPPING."""
    from tools.sample_export import generate_profiles, write_plain_segment

    written = {"Vip": generate_profiles(5, seed=1), "Newsletter": generate_profiles(5, seed=2)}
    for name, profiles in written.items():
        write_plain_segment(segments_container, name, profiles)
    return written


ENDED = {"succeeded", "partiallySucceeded", "failed", "cancelled", "skipped"}  # run states, as the API names them


def _deliver_until(settings, run_id: str, done, timeout: float) -> dict:
    """Deliver the run queue's messages to the run engine as the Functions host would (an invocation that
    raises fails the test) until done(the run's API view)."""
    import time

    from shared import runs, storage

    queue = storage.queue(settings, settings.export_queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = runs.get_run(settings, run_id).to_api()
        if done(view):
            return view
        for message in queue.receive_messages(max_messages=16, visibility_timeout=30):
            runs.process_message(settings, message.content)
            queue.delete_message(message)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not get there within {timeout:.0f} s")


@pytest.fixture()
def finish_run(api_settings):
    """finish_run(run_id) -> the run's API view once it has ended."""

    def finish(run_id: str, timeout: float = 60.0) -> dict:
        return _deliver_until(api_settings, run_id, lambda view: view["status"] in ENDED, timeout)

    return finish


@pytest.fixture()
def finish_approval(api_settings):
    """finish_approval(run_id) -> the run's API view once applying its approved removals has ended."""

    def finish(run_id: str, timeout: float = 60.0) -> dict:
        return _deliver_until(api_settings, run_id,
                              lambda view: view.get("removalsApproved", {}).get("status") in ("applied", "failed"),
                              timeout)

    return finish


# --- request bodies and headers ----------------------------------------------------------------


def export_body(connection_id: str, segments=("Vip",), **changes) -> dict:
    from tools.sample_export import DEFAULT_MAPPING

    body = {"displayName": "VIPs to Omnisend", "connectionId": connection_id, "segments": list(segments),
            "mapping": dict(DEFAULT_MAPPING)}
    return {**body, **changes}


def connection_body(api_key: str, **changes) -> dict:
    return {"displayName": "Webshop", "apiKey": api_key, "consent": True, **changes}


def b64(data) -> str:
    """A principal header value: base64 of bytes, or of the JSON of anything else."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.b64encode(raw).decode()
