"""Blob reads and writes sent straight over HTTP: the storage calls the app makes most, at a third of
their cost.

Every chunk is one ranged GET of about 150 KB, every Omnisend request takes its grant by a conditional
PUT of the connection's budget blob, and every step of a run reads and writes its state blobs (the run,
its claims, the connection's batch board). Through the SDK's blob client (its pipeline of policies,
`requests`, and the generated operation parsing the response headers into a model) a GET took about
3 ms of CPU, a quarter of a chunk's read and map; over a pooled urllib3 connection it takes about 1 ms.
So these requests are sent here, and listings, deletes, large uploads and the rest stay with the SDK.

A client authenticates as the container client it is made from: with the account key of a connection
string (Shared Key, signed below as the REST reference specifies), with a token of the client's
identity (HTTPS only), or with a SAS the client's URL already carries. Errors are azure-core's, chosen
by status as the SDK chooses them, and name the blob, never the URL's query.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from functools import lru_cache
from typing import Callable
from urllib.parse import quote, urlsplit

import urllib3
from azure.core.exceptions import (
    ClientAuthenticationError, HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import ContainerClient

from .environment import http_environment

STORAGE_SCOPE = "https://storage.azure.com/.default"
TOKEN_REFRESH_SECONDS = 300  # a token is renewed this long before it expires
# As the storage clients' retry (shared/storage.py): a keep-alive connection the service closed as the
# request went out is sent again at once; throttling and server errors after 2 s and 4 s.
RETRY = urllib3.Retry(
    total=3, backoff_factor=1, status_forcelist=(408, 429, 500, 502, 503, 504),
    allowed_methods=frozenset({"GET", "PUT"}), raise_on_status=False, respect_retry_after_header=True,
)
TIMEOUT = urllib3.Timeout(connect=20, read=60)  # the SDK's defaults
# Kept connections per host: more than the threads that read at once (a worker's invocations, the
# finishing step's change-log readers), or urllib3 would drop and warn about the ones above it.
MAX_CONNECTIONS = 32

# Shared Key: the standard headers signed, in order, before the canonicalized x-ms-* headers.
_SIGNED_HEADERS = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
    "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range",
)

Authorize = Callable[[str, dict, str], None]  # adds the credential to a request's headers (method, headers, path)


@dataclass(frozen=True)
class Got:
    """A blob's bytes as read, and the ETag of the version they are of."""

    data: bytes
    etag: str


class BlobHttp:
    """GETs and PUTs of the blobs of one container, authenticated as `container` is. Thread-safe."""

    def __init__(self, container: ContainerClient):
        url = urlsplit(container.url)
        self._path = url.path.rstrip("/") + "/"
        self._origin = f"{url.scheme}://{url.netloc}"
        self._version = container.api_version
        self._authorize, query = authorizer(container.credential, container.account_name, url.scheme)
        query = query or url.query
        self._query = f"?{query}" if query else ""
        self._pool = _pool(self._origin)

    def get(self, blob: str, *, etag: str | None = None, offset: int = 0, length: int | None = None) -> Got:
        """The blob, or `length` bytes of it from `offset`; with `etag`, only while it is that version
        (ResourceModifiedError once it was replaced). ResourceNotFoundError when it does not exist."""
        headers = {}
        where = f"blob {blob}"
        if length is not None:
            headers["x-ms-range"] = f"bytes={offset}-{offset + length - 1}"
            where += f" bytes {offset}-{offset + length - 1}"
        if etag is not None:
            headers["If-Match"] = etag
        response = self._send("GET", blob, headers, None, where)
        if response.status in (200, 206):
            return Got(response.data, response.headers["ETag"])
        raise _error(response, where)

    def put(self, blob: str, data: bytes, *, if_match: str | None = None, create_only: bool = False,
            content_type: str | None = None, metadata: dict[str, str] | None = None) -> str:
        """Write the block blob in one request and return its new ETag: only if it does not exist
        (`create_only`: ResourceExistsError), or only while it is version `if_match`
        (ResourceModifiedError)."""
        headers = {"Content-Length": str(len(data)), "x-ms-blob-type": "BlockBlob"}
        if content_type:
            headers["Content-Type"] = content_type
        if create_only:
            headers["If-None-Match"] = "*"
        if if_match:
            headers["If-Match"] = if_match
        for name, value in (metadata or {}).items():
            headers[f"x-ms-meta-{name}"] = value
        response = self._send("PUT", blob, headers, data, f"blob {blob}")
        if response.status == 201:
            return response.headers["ETag"]
        raise _error(response, f"blob {blob}")

    def _send(self, method: str, blob: str, headers: dict, body: bytes | None, where: str):
        headers.update({"x-ms-date": formatdate(usegmt=True), "x-ms-version": self._version})
        path = self._path + quote(blob, safe="/~")
        self._authorize(method, headers, path)
        try:
            return self._pool.request(method, self._origin + path + self._query, body=body, headers=headers,
                                      retries=RETRY, timeout=TIMEOUT, decode_content=False)
        except urllib3.exceptions.HTTPError as err:
            reason = getattr(err, "reason", None) or err
            raise ServiceRequestError(f"{where}: no answer ({type(reason).__name__})") from None


# As azure-core's map_error and the storage SDK choose them.
_ERRORS = {401: ClientAuthenticationError, 403: ClientAuthenticationError, 404: ResourceNotFoundError,
           409: ResourceExistsError, 412: ResourceModifiedError}


def _error(response, where: str) -> HttpResponseError:
    code = response.headers.get("x-ms-error-code") or response.reason
    return _ERRORS.get(response.status, HttpResponseError)(f"{where}: HTTP {response.status} ({code})")


@lru_cache(maxsize=64)
def for_container(container: ContainerClient) -> BlobHttp:
    """One per container client (the app keeps one of those per account and container)."""
    return BlobHttp(container)


def authorizer(credential, account_name: str, scheme: str) -> tuple[Authorize, str]:
    """How a request of `credential` is authorized: a header to add, or a query to append (a SAS)."""
    if hasattr(credential, "account_key"):  # the SDK's shared-key credential, from a connection string
        return _shared_key(account_name, credential.account_key), ""
    if hasattr(credential, "get_token"):
        if scheme != "https":
            raise ValueError("a storage token is sent over HTTPS only")
        return _Bearer(credential), ""
    signature = getattr(credential, "signature", None)  # an AzureSasCredential
    return _as_is, (signature.lstrip("?") if signature else "")


def _as_is(method: str, headers: dict, path: str) -> None:
    """A SAS in the URL, or a public container: nothing to add."""


def _shared_key(account_name: str, account_key: str) -> Authorize:
    key = base64.b64decode(account_key)

    def authorize(method: str, headers: dict, path: str) -> None:
        signature = shared_key_signature(key, account_name, method, path, headers)
        headers["Authorization"] = f"SharedKey {account_name}:{signature}"

    return authorize


def shared_key_signature(key: bytes, account_name: str, method: str, path: str, headers: dict) -> str:
    """The Shared Key signature of a request without a query: the verb, the standard headers, the
    x-ms-* headers sorted by name (metadata included), and the resource (the account, then the URL's path)."""
    lower = {name.lower(): str(value) for name, value in headers.items()}
    if lower.get("content-length") == "0":
        del lower["content-length"]  # signed as empty (version 2015-02-21 on)
    standard = [lower.get(name, "") for name in _SIGNED_HEADERS]
    canonical = [f"{name}:{lower[name].strip()}" for name in sorted(lower) if name.startswith("x-ms-")]
    text = "\n".join([method, *standard, *canonical, f"/{account_name}{path}"])
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


class _Bearer:
    """A token of the client's identity, fetched again shortly before it expires."""

    def __init__(self, credential):
        self._credential = credential
        self._token = None
        self._lock = threading.Lock()

    def __call__(self, method: str, headers: dict, path: str) -> None:
        token = self._token
        if token is None or token.expires_on - TOKEN_REFRESH_SECONDS < time.time():
            with self._lock:
                token = self._token
                if token is None or token.expires_on - TOKEN_REFRESH_SECONDS < time.time():
                    token = self._token = self._credential.get_token(STORAGE_SCOPE)
        headers["Authorization"] = f"Bearer {token.token}"


@lru_cache(maxsize=8)
def _pool(origin: str) -> urllib3.PoolManager:
    """Connections to the storage service at `origin`, with the environment's proxy and CA bundle; kept
    per process, so the workers' threads share warm connections."""
    return http_environment(origin).pool(urlsplit(origin).scheme, MAX_CONNECTIONS)
