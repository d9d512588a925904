"""Blob reads and writes sent straight over HTTP (shared/blobhttp.py): signed as the SDK signs, checked by Azurite."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from azure.core.credentials import AzureSasCredential
from azure.core.exceptions import (
    ClientAuthenticationError, HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError,
)
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from shared import blobhttp
from shared.blobhttp import BlobHttp, authorizer
from tools.azurite import ACCOUNT_KEY

DATA = bytes(range(256)) * 40


@pytest.fixture()
def stored(segments_container):
    """A blob of DATA in the segments container, with a name that needs quoting: (name, its ETag)."""
    name = "Some Segment/part 1 +ü.csv"
    etag = segments_container.get_blob_client(name).upload_blob(DATA, overwrite=True)["etag"]
    return name, etag


def test_a_blob_or_a_range_of_one_version_is_read_with_the_account_key(segments_container, stored):
    name, etag = stored
    reader = BlobHttp(segments_container)

    assert reader.get(name) == blobhttp.Got(DATA, etag)
    assert reader.get(name, etag=etag, offset=0, length=10) == blobhttp.Got(DATA[:10], etag)
    assert reader.get(name, etag=etag, offset=1000, length=5000).data == DATA[1000:6000]


def test_a_replaced_blob_and_a_missing_container_are_told_apart(azurite, segments_container, stored):
    name, etag = stored
    reader = BlobHttp(segments_container)
    segments_container.upload_blob(name, DATA[::-1], overwrite=True)

    with pytest.raises(ResourceModifiedError, match=r"Some Segment/part 1 \+ü.csv bytes 0-9: HTTP 412 \(ConditionNotMet"):
        reader.get(name, etag=etag, offset=0, length=10)
    assert reader.get(name).data == DATA[::-1]  # without the condition: the new version
    elsewhere = BlobHttp(ContainerClient.from_connection_string(azurite.connection_string, "no-such-container"))
    with pytest.raises(ResourceNotFoundError, match=r"blob Some Segment/part 1 \+ü.csv bytes 0-9: HTTP 404"):
        elsewhere.get(name, etag=etag, offset=0, length=10)


def test_a_wrong_key_is_refused_and_never_named(azurite, segments_container, stored):
    name, etag = stored
    wrong_key = base64.b64encode(b"not the account key").decode()
    connection_string = azurite.connection_string.replace(ACCOUNT_KEY, wrong_key)
    reader = BlobHttp(ContainerClient.from_connection_string(connection_string, segments_container.container_name))

    with pytest.raises(ClientAuthenticationError, match=r"bytes 0-9: HTTP 403") as raised:
        reader.get(name, etag=etag, offset=0, length=10)
    assert wrong_key not in str(raised.value) and "Signature" not in str(raised.value)


def test_a_sas_goes_in_the_query_and_never_into_an_error(segments_container, stored):
    name, etag = stored
    account_url, container = segments_container.primary_endpoint.rsplit("/", 1)
    sas = generate_container_sas(segments_container.account_name, container, account_key=ACCOUNT_KEY,
                                 permission=ContainerSasPermissions(read=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(minutes=5))
    reader = BlobHttp(ContainerClient(account_url, container, credential=AzureSasCredential(sas)))
    assert reader.get(name, offset=5, length=3).data == DATA[5:8]

    forged = sas.replace("sig=", "sig=AAAA")
    reader = BlobHttp(ContainerClient(account_url, container, credential=AzureSasCredential(forged)))
    with pytest.raises(HttpResponseError, match="HTTP 403") as raised:
        reader.get(name)
    assert "sig=" not in str(raised.value)


def test_a_connection_dropped_unanswered_is_sent_again_at_once(blob_traffic, segments_container, stored):
    name, etag = stored
    container = segments_container.container_name
    reader = BlobHttp(ContainerClient.from_connection_string(blob_traffic.connection_string, container))
    blob_traffic.drops = 1

    assert reader.get(name, offset=0, length=256).data == DATA[:256]
    assert blob_traffic.drops == 0 and blob_traffic.downloaded > 256


class _Credential:
    """A token credential that counts its tokens; each expires `lifetime` seconds after it is fetched."""

    def __init__(self, clock, lifetime: float):
        self.clock, self.lifetime, self.fetched = clock, lifetime, 0

    def get_token(self, *scopes):
        assert scopes == (blobhttp.STORAGE_SCOPE,)
        self.fetched += 1
        return SimpleNamespace(token=f"token-{self.fetched}", expires_on=self.clock[0] + self.lifetime)


def test_a_token_is_fetched_once_and_again_before_it_expires(monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(blobhttp.time, "time", lambda: clock[0])
    credential = _Credential(clock, lifetime=3600)
    authorize, query = authorizer(credential, "account", "https")

    headers = [{}, {}, {}]
    authorize("GET", headers[0], "/c/b")
    clock[0] += 3600 - blobhttp.TOKEN_REFRESH_SECONDS - 1
    authorize("GET", headers[1], "/c/b")
    clock[0] += 2
    authorize("GET", headers[2], "/c/b")

    assert query == "" and credential.fetched == 2
    assert [h["Authorization"] for h in headers] == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


def test_a_token_is_never_sent_over_plain_http():
    with pytest.raises(ValueError, match="HTTPS only"):
        authorizer(_Credential([0.0], 60), "account", "http")


def test_a_put_writes_the_body_type_and_metadata_under_its_conditions(segments_container, stored):
    name, etag = stored
    client = BlobHttp(segments_container)

    new_etag = client.put(name, b'{"a": 1}', if_match=etag, content_type="application/json", metadata={"changes": "t1"})
    properties = segments_container.get_blob_client(name).get_blob_properties()
    assert properties.etag == new_etag != etag and properties.metadata == {"changes": "t1"}
    assert properties.content_settings.content_type == "application/json"
    assert client.get(name) == blobhttp.Got(b'{"a": 1}', new_etag)

    with pytest.raises(ResourceModifiedError, match="HTTP 412"):
        client.put(name, b"stale", if_match=etag)
    with pytest.raises(ResourceExistsError, match="HTTP 409"):
        client.put(name, b"again", create_only=True)
    empty = client.put("empty.bin", b"", create_only=True)  # an empty body is signed without a length
    assert client.get("empty.bin") == blobhttp.Got(b"", empty)
