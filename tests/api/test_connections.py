"""Connections: the key checked with Omnisend and kept in the secret store only; who sees what."""
from __future__ import annotations

import dataclasses
import logging

import pytest

from shared.documents import DocumentStore
from shared.keystore import SecretNotFoundError, secret_store
from shared.storage import container
from tests.api.conftest import connection_body, export_body
from tests.conftest import API_IDENTITIES


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


NOT_IN_A_HEADER = "must hold only printable Latin-1 characters: it is sent in an HTTP header"


@pytest.mark.parametrize("api_key, message", [
    ("brand1-€uro0123456789", NOT_IN_A_HEADER),
    ("brand1-ключ0123456789", NOT_IN_A_HEADER),
    ("brand1-\x00abc0123456789", NOT_IN_A_HEADER),
    ("brand1-\x7fabc0123456789", NOT_IN_A_HEADER),
    ("brand1-\x85abc0123456789", "must not contain spaces or line breaks"),  # NEL, a C1 line break
    ("brand1-\ud800abc0123456789", "is not valid Unicode: it holds a lone surrogate escape (\\ud800-\\udfff)"),
], ids=["euro sign", "cyrillic", "NUL", "DEL", "NEL", "lone surrogate"])
def test_a_key_an_http_header_cannot_carry_is_a_field_error_before_anything_is_stored_or_sent(
        api, api_settings, sandbox, api_key, message, tmp_path):
    response = api("POST", "connections", json_body=connection_body(api_key))
    assert (response.status, response.json()["code"]) == (400, "validation_failed"), response.body
    assert response.json()["errors"] == [{"field": "apiKey", "message": message}]
    assert "0123456789" not in response.body.decode()
    assert sandbox.request_log() == []
    assert DocumentStore(api_settings).list_connections() == []
    assert not (tmp_path / "secrets").exists() or not any((tmp_path / "secrets").iterdir())
