"""The project's Omnisend contract: facts only, and the same facts as Omnisend's official OpenAPI files."""
from __future__ import annotations

import json

import pytest

from tests.contracts.derive import CONTRACT_PATH, OFFICIAL_DIR, PROSE_KEYS, derive, render
from tools.omnisend_sandbox import Contract

CLIENT_OPERATIONS = {
    ("get", "/contacts"), ("post", "/contacts"), ("get", "/contacts/{id}"), ("post", "/contacts/tags"),
    ("delete", "/contacts/tags"), ("get", "/batches"), ("post", "/batches"), ("get", "/batches/{batchID}"),
    ("get", "/batches/{batchID}/items"), ("get", "/brands/current"),
}


def committed() -> dict:
    return json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))


@pytest.mark.skipif(not OFFICIAL_DIR.is_dir(), reason="the official OpenAPI files (../shared/omnisend/openapi) are not here")
def test_contract_matches_the_official_openapi_files():
    assert CONTRACT_PATH.read_text(encoding="utf-8") == render(derive(OFFICIAL_DIR)), \
        "tests/contracts is stale: run python -m tests.contracts.derive"


def test_contract_holds_facts_not_prose():
    def walk(node, in_properties=False):
        if isinstance(node, dict):
            for key, value in node.items():
                assert in_properties or key not in PROSE_KEYS, f"prose key {key!r} in the contract"
                walk(value, in_properties=(key == "properties" and not in_properties))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(committed())


def test_contract_covers_every_operation_the_sandbox_serves():
    document = committed()
    served = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert CLIENT_OPERATIONS <= served
    assert document["x-apiVersion"] == "2026-03-15"
    # The limits the client enforces before sending come from here.
    schemas = document["components"]["schemas"]
    assert schemas["CreateBatchRequest"]["properties"]["items"]["maxItems"] == 100
    assert schemas["AddTagsRequest"]["properties"]["emails"]["maxItems"] == 250
    assert schemas["AddTagsRequest"]["properties"]["tags"] == {"items": {"type": "string"}, "maxItems": 100,
                                                               "minItems": 1, "type": "array"}
    assert document["paths"]["/contacts/tags"]["post"]["x-rateLimitPerMinute"] == 60
    assert document["paths"]["/batches"]["post"]["x-rateLimitPerMinute"] == 400


def test_client_limits_agree_with_the_contract():
    from shared import omnisend

    schemas = committed()["components"]["schemas"]
    assert omnisend.MAX_BATCH_ITEMS == schemas["CreateBatchRequest"]["properties"]["items"]["maxItems"]
    assert omnisend.MAX_TAG_EMAILS == schemas["AddTagsRequest"]["properties"]["emails"]["maxItems"]
    assert omnisend.MAX_TAGS_PER_CALL == schemas["AddTagsRequest"]["properties"]["tags"]["maxItems"]
    limit = next(p for p in committed()["paths"]["/contacts"]["get"]["parameters"] if p.get("name") == "limit")
    assert omnisend.MAX_PAGE_SIZE == limit["schema"]["maximum"]


def test_nullable_cursors_validate():
    contract = Contract.load()
    body = {"contacts": [], "paging": {"limit": 1, "hasMore": False, "cursors": {"after": None, "before": None}}}
    assert contract.response_errors("GET", "/contacts", 200, body) == []


def test_every_client_request_and_sandbox_response_in_a_full_flow_match(sandbox, omnisend_client):
    """A flow through every client operation; the `sandbox` fixture's teardown validates the log.
    Here the same check runs explicitly, and it must have seen every operation."""
    identifiers = [{"type": "email", "id": "flow@example.com", "sendWelcomeMessage": False}]
    omnisend_client.check_key()
    omnisend_client.get_brand()
    _, stored = omnisend_client.upsert_contact({"identifiers": identifiers, "firstName": "Flow"})
    batch_id = omnisend_client.create_contact_batch([{"identifiers": identifiers, "lastName": "Batch"}])
    omnisend_client.get_batches([batch_id])
    omnisend_client.get_batch(batch_id)
    omnisend_client.get_batch_items(batch_id)
    omnisend_client.add_tags(["flow@example.com"], ["t"])
    omnisend_client.remove_tags(["flow@example.com"], ["t"])
    list(omnisend_client.iter_contacts(tag="t"))
    seen = {(r.method.lower(), r.template) for r in sandbox.request_log()}
    assert seen == CLIENT_OPERATIONS - {("get", "/contacts/{id}")}
    assert sandbox.contract_violations() == []
