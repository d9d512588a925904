"""A local HTTPS stand-in of the Azure Key Vault secrets REST API, for tests.

It speaks the subset `azure.keyvault.secrets.SecretClient` uses to set, get and delete secrets
(`PUT /secrets/{name}`, `GET /secrets/{name}[/{version}]`, `DELETE /secrets/{name}`,
`GET /deletedsecrets/{name}`, all with an `api-version` query) and Key Vault's challenge
authentication: a request without a valid bearer token gets 401 with a `WWW-Authenticate`
challenge naming the tenant and resource, and the client then retries with a token from its
credential. Soft delete with purge protection is always on, as in the deployed vault: a deleted
name cannot be set again (409).

TLS uses a certificate the caller provides (tests make a self-signed one). The server never logs
or returns anything but what the REST API returns; it keeps a list of (method, path, status) per
request so tests can check the challenge flow.
"""
from __future__ import annotations

import json
import re
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

NAME = r"(?P<name>[0-9a-zA-Z-]{1,127})"
SECRET_PATH = re.compile(rf"^/secrets/{NAME}(?:/(?P<version>[0-9a-zA-Z]*))?/?$")
DELETED_PATH = re.compile(rf"^/deletedsecrets/{NAME}/?$")
RESOURCE = "https://vault.azure.net"


class FixedTokenCredential:
    """A TokenCredential issuing one fixed token; records the scopes and tenants it was asked for."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.requests: list[tuple[tuple[str, ...], str | None]] = []

    def __repr__(self) -> str:
        return "FixedTokenCredential(token=***)"

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None, **kwargs: Any):
        from azure.core.credentials import AccessToken as CoreAccessToken

        self.requests.append((scopes, tenant_id))
        return CoreAccessToken(self._token, int(time.time()) + 3600)


@dataclass
class _Version:
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    created: int


@dataclass
class _Vault:
    secrets: dict[str, list[_Version]] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)  # name -> deletion time
    lock: threading.Lock = field(default_factory=threading.Lock)


class KeyVaultStandIn:
    """`start()` it, point SecretClient at `.url` with `connection_verify=<cert file>`."""

    def __init__(
        self,
        certfile: str,
        keyfile: str,
        *,
        token: str | None = None,
        tenant_id: str = "00000000-0000-0000-0000-000000000000",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.tenant_id = tenant_id
        self.requests: list[tuple[str, str, int]] = []
        self._vault = _Vault()
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(certfile, keyfile)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._server.socket = self._tls.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"KeyVaultStandIn(url={self.url!r})"

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"https://{host}:{port}"

    def credential(self) -> FixedTokenCredential:
        return FixedTokenCredential(self.token)

    def start(self) -> "KeyVaultStandIn":
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="keyvault-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def secret_names(self) -> list[str]:
        with self._vault.lock:
            return sorted(self._vault.secrets)

    def deleted_names(self) -> list[str]:
        with self._vault.lock:
            return sorted(self._vault.deleted)

    # --- the REST API -------------------------------------------------------------------------

    def _challenge(self) -> str:
        return f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", resource="{RESOURCE}"'

    def _bundle(self, name: str, version: _Version) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "value": version.value,
            "id": f"{self.url}/secrets/{name}/{version.version}",
            "attributes": {
                "enabled": True,
                "created": version.created,
                "updated": version.created,
                "recoveryLevel": "Recoverable",
                "recoverableDays": 90,
            },
        }
        if version.content_type:
            bundle["contentType"] = version.content_type
        if version.tags:
            bundle["tags"] = version.tags
        return bundle

    def _set(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        value = body.get("value")
        if not isinstance(value, str):
            return 400, _error("BadParameter", "The request body must carry a string 'value'.")
        version = _Version(uuid.uuid4().hex, value, body.get("contentType"), body.get("tags"), int(time.time()))
        with self._vault.lock:
            if name in self._vault.deleted:
                return 409, _error(
                    "Conflict",
                    f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be "
                    "reused; in this state, the secret can only be recovered or purged.",
                )
            self._vault.secrets.setdefault(name, []).append(version)
        return 200, self._bundle(name, version)

    def _get(self, name: str, version_id: str | None) -> tuple[int, dict[str, Any]]:
        with self._vault.lock:
            versions = self._vault.secrets.get(name, [])
            found = [v for v in versions if v.version == version_id] if version_id else versions[-1:]
        if not found:
            what = f"(name/id) {name}" + (f"/{version_id}" if version_id else "")
            return 404, _error("SecretNotFound", f"A secret with {what} was not found in this key vault.")
        return 200, self._bundle(name, found[0])

    def _delete(self, name: str) -> tuple[int, dict[str, Any]]:
        now = int(time.time())
        with self._vault.lock:
            versions = self._vault.secrets.pop(name, None)
            if versions is None:
                return 404, _error("SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault.")
            self._vault.deleted[name] = now
        return 200, self._deleted_bundle(name, versions[-1], now)

    def _get_deleted(self, name: str) -> tuple[int, dict[str, Any]]:
        with self._vault.lock:
            deleted_at = self._vault.deleted.get(name)
        if deleted_at is None:
            return 404, _error("SecretNotFound", f"Deleted Secret not found: {name}")
        bundle = {"id": f"{self.url}/secrets/{name}", "attributes": {"enabled": True, "recoveryLevel": "Recoverable"}}
        return 200, {**bundle, "recoveryId": f"{self.url}/deletedsecrets/{name}", "deletedDate": deleted_at}

    def _deleted_bundle(self, name: str, version: _Version, now: int) -> dict[str, Any]:
        bundle = self._bundle(name, version)
        bundle.pop("value")
        return {
            **bundle,
            "recoveryId": f"{self.url}/deletedsecrets/{name}",
            "deletedDate": now,
            "scheduledPurgeDate": now + 90 * 86400,
        }

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any] | None]:
        if match := SECRET_PATH.match(path):
            name, version = match["name"], match["version"] or None
            if method == "PUT" and version is None:
                try:
                    document = json.loads(body or b"{}")
                except ValueError:
                    return 400, _error("BadParameter", "The request body is not JSON.")
                return self._set(name, document if isinstance(document, dict) else {})
            if method == "GET":
                return self._get(name, version)
            if method == "DELETE" and version is None:
                return self._delete(name)
            return 405, _error("MethodNotAllowed", f"{method} is not supported on {path}.")
        if (match := DELETED_PATH.match(path)) and method == "GET":
            return self._get_deleted(match["name"])
        return 404, _error("NotFound", f"No such operation: {method} {path}")

    def _handler_class(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                status, document, extra = self._answer(url.path, parse_qs(url.query), body)
                standin.requests.append((self.command, url.path, status))
                payload = json.dumps(document).encode() if document is not None else b""
                self.send_response(status)
                for header, value in extra.items():
                    self.send_header(header, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _answer(self, path: str, query: dict[str, list[str]], body: bytes):
                if self.headers.get("Authorization") != f"Bearer {standin.token}":
                    error = _error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
                    return 401, error, {"WWW-Authenticate": standin._challenge()}
                if not query.get("api-version"):
                    return 400, _error("BadParameter", "The 'api-version' query parameter is required."), {}
                status, document = standin._route(self.command, path, body)
                return status, document, {}

            do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _handle

        return Handler


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
