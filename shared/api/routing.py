"""Routes, who may call them, and dispatch: `handle` answers one request and never raises.

Every route, its access level and its status codes are documented in `openapi/exports-api.json`;
a test keeps the two in step. A resource module registers its routes with `@route(...)`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Callable

from azure.core.exceptions import AzureError

from ..auth import Caller, PrincipalError, caller_from_headers
from ..documents import Connection, DocumentConflictError, DocumentError, DocumentNotFoundError, DocumentStore
from ..problems import ApiProblem
from ..settings import Settings
from .http import ApiRequest, ApiResponse, problem_response

log = logging.getLogger(__name__)


class Access:
    PUBLIC = "public"  # no principal needed
    MEMBER = "member"  # admins and contributors (handlers narrow it down per connection)
    ADMIN = "admin"


@dataclass
class Context:
    """One request being answered: its settings, parameters and caller."""

    settings: Settings
    request: ApiRequest
    params: dict[str, str]
    caller: Caller | None = None
    _store: DocumentStore | None = None
    _connections: dict[str, Connection | None] = field(default_factory=dict)

    @property
    def store(self) -> DocumentStore:
        if self._store is None:
            self._store = DocumentStore(self.settings)
        return self._store

    @property
    def identity(self) -> str:
        assert self.caller is not None, "routes that need an identity are never PUBLIC"
        return self.caller.identity

    @property
    def is_admin(self) -> bool:
        return self.caller is not None and self.caller.is_admin

    def connection(self, connection_id: str) -> Connection | None:
        """A stored connection, read once per request; None when there is none of that id."""
        if connection_id not in self._connections:
            try:
                self._connections[connection_id] = self.store.get_connection(connection_id)
            except DocumentNotFoundError:
                self._connections[connection_id] = None
        return self._connections[connection_id]


Handler = Callable[[Context], ApiResponse]

# Path parameters that are ids, with the problem that answers an id naming nothing (as documents.is_valid_id).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ID_PARAMETERS = {
    "connectionId": ("connection_not_found", "connection"),
    "exportId": ("export_not_found", "export"),
    "runId": ("run_not_found", "run"),
}


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # as in the OpenAPI document, without the "/api" server prefix
    access: str
    handler: Handler

    def match(self, parts: list[str]) -> dict[str, str] | None:
        pattern = self.template.strip("/").split("/")
        if len(pattern) != len(parts):
            return None
        params = {}
        for expected, actual in zip(pattern, parts):
            if expected.startswith("{"):
                params[expected[1:-1]] = actual
            elif expected != actual:
                return None
        return params


ROUTES: list[Route] = []


def route(method: str, template: str, access: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, template, access, handler))
        return handler
    return register


def handle(settings: Settings, request: ApiRequest) -> ApiResponse:
    """Answer one API request. Never raises: every failure becomes a problem response."""
    instance = "/api/" + shown(request.path.strip("/"), 200)
    try:
        matched, params = _match(request)
        context = Context(settings, request, params)
        context.caller = _authorize(request, matched.access, settings)
        _check_ids(params)
        return matched.handler(context)
    except ApiProblem as problem:
        if problem.status >= 500:
            log.error("%s %s -> %s %s: %s", request.method, instance, problem.status, problem.code, problem.detail)
        else:
            log.info("%s %s -> %s %s", request.method, instance, problem.status, problem.code)
        return problem_response(problem, instance)
    except Exception as error:  # noqa: BLE001 - the one place unexpected errors become a 500
        return problem_response(_unexpected(error, request.method, instance), instance)


def _match(request: ApiRequest) -> tuple[Route, dict[str, str]]:
    parts = [part for part in request.path.strip("/").split("/") if part]
    allowed = []
    for candidate in ROUTES:
        params = candidate.match(parts)
        if params is None:
            continue
        if candidate.method == request.method:
            return candidate, params
        allowed.append(candidate.method)
    if allowed:
        raise ApiProblem("method_not_allowed", f"{request.method} is not allowed here; use {', '.join(allowed)}",
                         headers={"Allow": ", ".join(allowed)})
    raise ApiProblem("route_not_found", f"no route /api/{shown('/'.join(parts), 200)}; see /api/openapi.json")


def _check_ids(params: dict[str, str]) -> None:
    """Ids in the path are letters, digits, `_` and `-` (ASCII, at most 64): anything else names nothing,
    and is answered without reaching storage."""
    for name, value in params.items():
        if name in _ID_PARAMETERS and not _ID.fullmatch(value):
            code, kind = _ID_PARAMETERS[name]
            raise ApiProblem(code, f"{kind} '{shown(value, 64)}' does not exist: ids are 1 to 64 letters, "
                             "digits, '_' or '-'")


def shown(text: str, limit: int) -> str:
    """Text from the request as a message or log line shows it: at most `limit` characters, surrogates and
    control characters escaped."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def _authorize(request: ApiRequest, access: str, settings: Settings) -> Caller | None:
    if access == Access.PUBLIC:
        return None
    if not settings.trust_client_principal:
        log.error("App Service Authentication is off: every caller is refused")
        raise ApiProblem("unauthenticated", "App Service Authentication is off for this app, so no caller can be "
                         "trusted: turn it on (README, Deploy to Azure)")
    try:
        caller = caller_from_headers(request.headers)
    except PrincipalError as error:
        raise ApiProblem("invalid_principal", str(error)) from None
    if caller is None:
        raise ApiProblem("unauthenticated", "no X-MS-CLIENT-PRINCIPAL header: sign in through App Service "
                         "Authentication")
    if access == Access.ADMIN and not caller.is_admin:
        raise ApiProblem("forbidden", "this needs the Exports.Admin role")
    if not caller.is_member:
        raise ApiProblem("forbidden", "this needs the Exports.Admin or Exports.Contributor role")
    return caller


def _unexpected(error: Exception, method: str, instance: str) -> ApiProblem:
    if isinstance(error, DocumentConflictError):
        return ApiProblem("edit_conflict", f"{error}; retry")
    if isinstance(error, DocumentError):
        log.error("%s %s: %s", method, instance, error)
        return ApiProblem("stored_document_invalid", str(error))
    if isinstance(error, NotImplementedError):
        return ApiProblem("not_implemented", f"this part of the app is not available yet: {error}")
    if isinstance(error, AzureError):
        log.error("%s %s: storage error %s", method, instance, type(error).__name__)
        return ApiProblem("storage_unavailable", f"the storage account did not answer as expected "
                          f"({type(error).__name__}); retry later")
    log.exception("%s %s failed", method, instance)
    return ApiProblem("internal_error", f"unexpected {type(error).__name__}; the app log has the details")
