"""The shipped OpenAPI document and the API agree: same routes, valid examples, same problem codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.api import ROUTES
from shared.problems import PROBLEMS

REPOSITORY = Path(__file__).resolve().parents[2]
REFERENCE = REPOSITORY.parent / "shared" / "omnisend"  # Omnisend's reference files, beside a working copy
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in HTTP_METHODS}


def test_every_documented_route_is_served_and_every_served_route_is_documented(exports_api_contract):
    served = {(item.method, item.template) for item in ROUTES}
    documented = documented_operations(exports_api_contract.document)
    assert documented - served == set(), "documented but not routed"
    assert served - documented == set(), "routed but not documented"


def test_the_document_is_openapi_3_0_served_under_api(exports_api_contract):
    document = exports_api_contract.document
    assert document["openapi"].startswith("3.0.")
    assert document["servers"] == [{"url": "/api"}]
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_problem_codes_are_the_catalogue(exports_api_contract):
    enum = exports_api_contract.document["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert set(enum) == set(PROBLEMS)


def _examples(document: dict):
    """(where, schema, example) for every example next to a schema in the document."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media_type, entry in content.items():
                if "example" in entry:
                    yield f"{method.upper()} {path} request", entry["schema"], entry["example"]
            for status, response in operation["responses"].items():
                for media_type, entry in response.get("content", {}).items():
                    if "example" in entry:
                        yield f"{method.upper()} {path} {status}", entry["schema"], entry["example"]
                    for name, example in entry.get("examples", {}).items():
                        yield f"{method.upper()} {path} {status} {name}", entry["schema"], example["value"]
    for name, response in document["components"]["responses"].items():
        for entry in response["content"].values():
            for example_name, example in entry.get("examples", {}).items():
                yield f"response {name} {example_name}", entry["schema"], example["value"]


def test_every_example_matches_its_schema(exports_api_contract):
    examples = list(_examples(exports_api_contract.document))
    assert len(examples) >= 20
    failures = {where: errors for where, schema, example in examples
                if (errors := exports_api_contract.errors(schema, example))}
    assert failures == {}


def test_schemas_refuse_what_the_api_refuses(exports_api_contract):
    """The contract test is only useful if the schemas can fail: a few known-bad bodies must not pass."""
    schemas = exports_api_contract.document["components"]["schemas"]
    assert exports_api_contract.errors({"$ref": "#/components/schemas/ExportWrite"},
                                       {"displayName": "x", "connectionId": "c", "segments": [], "mapping": {}})
    assert exports_api_contract.errors({"$ref": "#/components/schemas/ConnectionCreate"},
                                       {"displayName": "x", "apiKey": "k", "consent": True, "colour": "red"})
    assert exports_api_contract.errors({"$ref": "#/components/schemas/ConnectionCreate"},
                                       {"displayName": "x", "apiKey": "brand1-€", "consent": True})
    assert not exports_api_contract.errors({"$ref": "#/components/schemas/ConnectionCreate"},
                                           {"displayName": "x", "apiKey": "brand1-ÿ~!", "consent": True})
    assert exports_api_contract.errors({"$ref": "#/components/schemas/Run"}, {"runId": "r"})
    rich = {"email": "E", "customProperties": {"tier": {"column": "T", "type": "string"}}}
    assert not exports_api_contract.errors({"$ref": "#/components/schemas/FieldMapping"}, rich)
    for bad in ({"tier": {"column": "T", "type": "money"}}, {"tier": {"column": "T", "type": "string", "x": 1}},
                {"a b": {"column": "T", "type": "string"}}):
        assert exports_api_contract.errors({"$ref": "#/components/schemas/FieldMapping"},
                                           {**rich, "customProperties": bad}), bad
    assert "nullable" in json.dumps(schemas["Connection"])  # the null-conversion is exercised


def test_get_openapi_json_serves_the_document_without_a_principal(api, exports_api_contract):
    response = api("GET", "openapi.json", role=None)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == exports_api_contract.document


def test_health_needs_no_principal(api, exports_api_contract):
    response = api("GET", "health", role=None)
    assert (response.status, response.json()) == (200, {"status": "ok"})
    exports_api_contract.check(response, "GET", "/health")


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/omnisend (reference contracts) not present in this clone")
def test_omnisend_rate_defaults_match_the_reference_notes():
    """The documented connection defaults are Omnisend's published limits."""
    notes = (REFERENCE / "API-NOTES.md").read_text()
    assert "400 requests/minute" in notes and "60/minute" in notes
    document = json.loads((REPOSITORY / "openapi" / "exports-api.json").read_text())
    create = document["components"]["schemas"]["ConnectionCreate"]["properties"]
    assert (create["requestsPerMinute"]["default"], create["tagRequestsPerMinute"]["default"]) == (400, 60)


def test_every_problem_code_is_raised_somewhere_and_every_raised_code_is_catalogued():
    import re

    modules = sorted((REPOSITORY / "shared" / "api").glob("*.py"))
    source = "\n".join(path.read_text(encoding="utf-8") for path in modules)
    raised = set(re.findall(r'ApiProblem\(\s*"([a-z_]+)"', source))
    for chosen in re.findall(r'code = "([a-z_]+)" if [^\n]* else "([a-z_]+)"', source):  # code = "a" if x else "b"
        raised |= set(chosen)
    assert raised - set(PROBLEMS) == set()
    assert set(PROBLEMS) - raised == set(), "catalogued codes the API never answers"


def test_the_document_asks_for_the_client_principal_and_no_function_key(exports_api_contract):
    """The API route is anonymous at the Functions-key level (function_app.py): the principal is all it reads."""
    document = exports_api_contract.document
    assert document["security"] == [{"clientPrincipal": []}]
    assert list(document["components"]["securitySchemes"]) == ["clientPrincipal"]
    assert "x-functions-key" not in json.dumps(document)
