"""The HTTP API (connections, segments, exports, runs), in plain Python so it runs without the host.

`function_app.py` turns a `func.HttpRequest` into an `ApiRequest`, calls `handle`, and turns the
`ApiResponse` back. Every route, its role and its status codes are documented in
`openapi/exports-api.json`; a test keeps the two in step.

Roles: `Exports.Admin` may do everything; `Exports.Contributor` may read segments and create, change,
run and read exports on connections an admin made usable by contributors, and sees only the id, name
and type of such connections.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

from azure.core.exceptions import AzureError, ResourceNotFoundError

from .auth import Caller, PrincipalError, caller_from_headers
from .documents import (
    RUN_ON_VALUES,
    USABLE_BY_VALUES,
    Connection,
    DocumentConflictError,
    DocumentError,
    DocumentNotFoundError,
    DocumentStore,
    Export,
    new_id,
    utc_now,
)
from .problems import PROBLEM_CONTENT_TYPE, ApiProblem, FieldError
from .settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi" / "exports-api.json"
JSON_CONTENT_TYPE = "application/json"


# ---------------------------------------------------------------------------------------------------
# Requests and responses


class _Headers(Mapping[str, str]):
    """Read-only headers with case-insensitive names."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._items = {name.lower(): value for name, value in headers.items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:  # names only: values carry principals and function keys
        return f"_Headers({sorted(self._items)})"


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # after "/api/", e.g. "exports/abc/runs"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "headers", _Headers(self.headers))

    def __repr__(self) -> str:  # never the body (API keys) nor header values (principal, function key)
        return f"ApiRequest({self.method} /api/{self.path.lstrip('/')}, {len(self.body)} body bytes)"


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> ApiResponse:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return ApiResponse(status, body, {"Content-Type": f"{JSON_CONTENT_TYPE}; charset=utf-8", **(headers or {})})


def problem_response(problem: ApiProblem, instance: str | None = None) -> ApiResponse:
    body = json.dumps(problem.to_api(instance), ensure_ascii=False).encode("utf-8")
    return ApiResponse(problem.status, body, {"Content-Type": PROBLEM_CONTENT_TYPE, **problem.headers})


# ---------------------------------------------------------------------------------------------------
# Request body validation: every bad field is reported at once, by its JSON path


Check = Callable[[Any, str], list[FieldError]]


def _text(max_length: int) -> Check:
    def check(value: Any, path: str) -> list[FieldError]:
        if not isinstance(value, str):
            return [FieldError(path, f"must be a string, got {_json_type(value)}")]
        if not value.strip() or len(value) > max_length:
            return [FieldError(path, f"must be 1 to {max_length} characters, not blank")]
        return []
    return check


def _token(max_length: int) -> Check:
    """A string without whitespace (keys, ids)."""
    text = _text(max_length)

    def check(value: Any, path: str) -> list[FieldError]:
        errors = text(value, path)
        if not errors and any(char.isspace() for char in value):
            errors = [FieldError(path, "must not contain spaces or line breaks")]
        return errors
    return check


def _integer(minimum: int, maximum: int) -> Check:
    def check(value: Any, path: str) -> list[FieldError]:
        if isinstance(value, bool) or not isinstance(value, int):
            return [FieldError(path, f"must be a whole number, got {_json_type(value)}")]
        if not minimum <= value <= maximum:
            return [FieldError(path, f"must be between {minimum} and {maximum}, got {value}")]
        return []
    return check


def _boolean(value: Any, path: str) -> list[FieldError]:
    return [] if isinstance(value, bool) else [FieldError(path, f"must be true or false, got {_json_type(value)}")]


def _one_of(*allowed: str) -> Check:
    def check(value: Any, path: str) -> list[FieldError]:
        if value in allowed:
            return []
        shown = json.dumps(value) if isinstance(value, str) else _json_type(value)
        return [FieldError(path, f"must be one of {', '.join(map(json.dumps, allowed))}, got {shown}")]
    return check


def _list_of(item: Check, *, min_items: int, max_items: int) -> Check:
    def check(value: Any, path: str) -> list[FieldError]:
        if not isinstance(value, list):
            return [FieldError(path, f"must be a list, got {_json_type(value)}")]
        if not min_items <= len(value) <= max_items:
            return [FieldError(path, f"must have {min_items} to {max_items} items, got {len(value)}")]
        errors = [error for index, entry in enumerate(value) for error in item(entry, f"{path}[{index}]")]
        seen: set[Any] = set()
        for index, entry in enumerate(value):
            if isinstance(entry, str) and entry in seen:
                errors.append(FieldError(f"{path}[{index}]", f"repeats {json.dumps(entry)}"))
            seen.add(entry if isinstance(entry, str) else id(entry))
        return errors
    return check


def _string_map(value: Any, path: str) -> list[FieldError]:
    if not isinstance(value, dict):
        return [FieldError(path, f"must be an object, got {_json_type(value)}")]
    return [FieldError(f"{path}.{key}", f"must be a column name (string), got {_json_type(entry)}")
            for key, entry in value.items() if not isinstance(entry, str)]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


@dataclass(frozen=True)
class BodyField:
    name: str
    check: Check
    required: bool = False
    default: Any = None
    nullable: bool = False


def parse_body(request: ApiRequest, fields: tuple[BodyField, ...]) -> dict[str, Any]:
    """The validated JSON object body with defaults filled in; ApiProblem listing every bad field."""
    data = _json_object(request)
    known = {item.name for item in fields}
    errors = [FieldError(name, "is not a known field") for name in data if name not in known]
    values: dict[str, Any] = {}
    for item in fields:
        if item.name not in data:
            if item.required:
                errors.append(FieldError(item.name, "is required"))
            values[item.name] = item.default() if callable(item.default) else item.default
        elif data[item.name] is None and item.nullable:
            values[item.name] = None
        else:
            errors.extend(item.check(data[item.name], item.name))
            values[item.name] = data[item.name]
    if errors:
        raise ApiProblem("validation_failed", f"{len(errors)} invalid field(s): "
                         + "; ".join(f"{error.field} {error.message}" for error in errors), errors)
    return values


def _json_object(request: ApiRequest) -> dict[str, Any]:
    if len(request.body) > MAX_BODY_BYTES:
        raise ApiProblem("body_too_large", f"the body has {len(request.body)} bytes; the limit is {MAX_BODY_BYTES}")
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type and content_type != JSON_CONTENT_TYPE and not content_type.endswith("+json"):
        raise ApiProblem("unsupported_media_type", f"Content-Type is {content_type!r}; send {JSON_CONTENT_TYPE}")
    if not request.body.strip():
        raise ApiProblem("invalid_json", "the body is empty; send a JSON object")
    try:
        data = json.loads(request.body)
    except UnicodeDecodeError:
        raise ApiProblem("invalid_json", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        # The position only: the message never quotes the body, which may hold an API key.
        raise ApiProblem("invalid_json", f"the body is not valid JSON: {error.msg} at line {error.lineno} "
                         f"column {error.colno}") from None
    if not isinstance(data, dict):
        raise ApiProblem("invalid_json", f"the body must be a JSON object, got {_json_type(data)}")
    return data


CONNECTION_FIELDS = (
    BodyField("displayName", _text(200), required=True),
    BodyField("apiKey", _token(500), required=True),
    BodyField("usableBy", _one_of(*USABLE_BY_VALUES), default="admins"),
    BodyField("consent", _boolean, default=False),
    BodyField("contactLimit", _integer(1, 100_000_000), nullable=True),
    BodyField("requestsPerMinute", _integer(1, 100_000), default=400),
    BodyField("tagRequestsPerMinute", _integer(1, 100_000), default=60),
)

EXPORT_FIELDS = (
    BodyField("displayName", _text(200), required=True),
    BodyField("connectionId", _token(64), required=True),
    BodyField("segments", _list_of(_text(256), min_items=1, max_items=100), required=True),
    BodyField("mapping", _string_map, required=True),
    BodyField("runOn", _list_of(_one_of(*RUN_ON_VALUES), min_items=0, max_items=2),
              default=lambda: list(RUN_ON_VALUES)),
    BodyField("tagContacts", _boolean, default=True),
)


# ---------------------------------------------------------------------------------------------------
# Routing


class Access:
    PUBLIC = "public"  # no principal needed
    MEMBER = "member"  # admins and contributors (handlers narrow it down per connection)
    ADMIN = "admin"


@dataclass
class Context:
    settings: Settings
    request: ApiRequest
    params: dict[str, str]
    caller: Caller | None = None
    _store: DocumentStore | None = None

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


Handler = Callable[[Context], ApiResponse]


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
    instance = "/api/" + request.path.strip("/")
    try:
        matched, params = _match(request)
        context = Context(settings, request, params)
        context.caller = _authorize(request, matched.access, settings)
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
    raise ApiProblem("route_not_found", f"no route /api/{'/'.join(parts)}; see /api/openapi.json")


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


# ---------------------------------------------------------------------------------------------------
# Shared lookups and rules


def _get_connection(context: Context, connection_id: str) -> Connection:
    try:
        return context.store.get_connection(connection_id)
    except DocumentNotFoundError:
        raise ApiProblem("connection_not_found", f"connection {connection_id!r} does not exist") from None


def _require_usable(context: Context, connection: Connection) -> None:
    if not context.is_admin and not connection.usable_by_contributors:
        raise ApiProblem("connection_not_usable", f"connection {connection.id!r} is usable by admins only")


def _get_export(context: Context, export_id: str) -> Export:
    """An export the caller may see: admins see all; contributors those on connections usable by them."""
    try:
        export = context.store.get_export(export_id)
    except DocumentNotFoundError:
        raise ApiProblem("export_not_found", f"export {export_id!r} does not exist") from None
    if not context.is_admin:
        try:
            connection = context.store.get_connection(export.connection_id)
        except DocumentNotFoundError:
            raise ApiProblem("forbidden", f"export {export_id!r} has no connection; only admins can use it") from None
        _require_usable(context, connection)
    return export


def _location(path: str) -> dict[str, str]:
    return {"Location": f"/api/{path}"}


# ---------------------------------------------------------------------------------------------------
# Public routes


@route("GET", "/health", Access.PUBLIC)
def get_health(context: Context) -> ApiResponse:
    return json_response(200, {"status": "ok"})


@lru_cache(maxsize=1)
def _openapi_document() -> bytes:
    return OPENAPI_PATH.read_bytes()


@route("GET", "/openapi.json", Access.PUBLIC)
def get_openapi(context: Context) -> ApiResponse:
    return ApiResponse(200, _openapi_document(), {"Content-Type": f"{JSON_CONTENT_TYPE}; charset=utf-8"})


# ---------------------------------------------------------------------------------------------------
# Connections


@route("POST", "/connections", Access.ADMIN)
def create_connection(context: Context) -> ApiResponse:
    body = parse_body(context.request, CONNECTION_FIELDS)
    if body["consent"] is not True:
        raise ApiProblem("consent_required", "set consent to true: contact data leaves Customer Insights and "
                         "you are responsible for the contacts' consent", [FieldError("consent", "must be true")])
    api_key: str = body["apiKey"].strip()
    _check_key(context.settings, api_key)

    from .keystore import SecretStoreError, secret_name_for, secret_store

    now = utc_now()
    connection = Connection(
        id=new_id(), display_name=body["displayName"].strip(), secret_name="", export_user=context.identity,
        consent_at=now, created_at=now, created_by=context.identity, usable_by=body["usableBy"],
        contact_limit=body["contactLimit"], requests_per_minute=body["requestsPerMinute"],
        tag_requests_per_minute=body["tagRequestsPerMinute"],
    )
    connection.secret_name = secret_name_for(connection.id)
    store = secret_store(context.settings)
    try:
        store.set(connection.secret_name, api_key)
    except SecretStoreError as error:
        raise ApiProblem("secret_store_unavailable", f"the key could not be stored: {error}") from None
    try:
        context.store.put_connection(connection)
    except Exception:
        _forget_secret(store, connection.secret_name)  # no connection document, so no key either
        raise
    log.info("connection %s created by %s", connection.id, context.identity)
    return json_response(201, connection.to_api(full=True), _location(f"connections/{connection.id}"))


def _check_key(settings: Settings, api_key: str) -> None:
    """Ask Omnisend whether the key works, without writing anything there."""
    import requests

    from . import omnisend

    # One quick retry only: a person is waiting for this answer.
    client = omnisend.OmnisendClient(api_key, base_url=settings.omnisend_api_url, max_retries=1, timeout=10.0)
    try:
        client.check_key()
    except (omnisend.AuthenticationError, omnisend.PermissionDeniedError) as error:
        raise ApiProblem("omnisend_rejected_key", f"Omnisend did not accept the key: {error}",
                         [FieldError("apiKey", "was rejected by Omnisend")]) from None
    except (omnisend.OmnisendError, requests.RequestException) as error:
        raise ApiProblem("omnisend_unreachable", f"Omnisend at {settings.omnisend_api_url} did not answer as "
                         f"expected ({type(error).__name__}); retry later") from None
    finally:
        client.close()


def _forget_secret(store: Any, name: str) -> None:
    try:
        store.delete(name)
    except Exception:  # noqa: BLE001 - best effort; the original error is what the caller needs
        log.warning("secret %s could not be deleted after a failed save; delete it by hand", name)


@route("GET", "/connections", Access.MEMBER)
def list_connections(context: Context) -> ApiResponse:
    visible = [item for item in context.store.list_connections()
               if context.is_admin or item.usable_by_contributors]
    return json_response(200, {"connections": [item.to_api(full=context.is_admin) for item in visible]})


@route("GET", "/connections/{connectionId}", Access.MEMBER)
def get_connection(context: Context) -> ApiResponse:
    connection = _get_connection(context, context.params["connectionId"])
    _require_usable(context, connection)
    return json_response(200, connection.to_api(full=context.is_admin))


@route("DELETE", "/connections/{connectionId}", Access.ADMIN)
def delete_connection(context: Context) -> ApiResponse:
    connection = _get_connection(context, context.params["connectionId"])
    users = context.store.list_exports(connection_id=connection.id)
    if users:
        raise ApiProblem("connection_in_use", f"{len(users)} export(s) use connection {connection.id!r}: delete "
                         "them or move them to another connection first",
                         extra={"exportIds": [item.id for item in users]})
    from .keystore import SecretStoreError, secret_store

    # The secret goes first: if that fails nothing has changed and the DELETE can simply be retried.
    try:
        secret_store(context.settings).delete(connection.secret_name)
    except SecretStoreError as error:
        raise ApiProblem("secret_store_unavailable", f"the key could not be deleted: {error}") from None
    try:
        context.store.delete_connection(connection.id)
    except DocumentNotFoundError:
        pass  # deleted at the same time by someone else: the outcome the caller wants
    log.info("connection %s deleted by %s", connection.id, context.identity)
    return ApiResponse(204)


# ---------------------------------------------------------------------------------------------------
# Segments


def _segments(settings: Settings) -> tuple[list[Any], list[str]]:
    """The readable segments, and why others could not be read (one broken export hides no other)."""
    from . import segments
    from .storage import container

    problems: list[Any] = []
    try:
        found = segments.list_segments(container(settings, settings.segments_container), errors=problems)
    except ResourceNotFoundError:
        return [], []  # no container yet: no segments
    return list(found), [str(problem) for problem in problems]


def _segment_to_api(segment: Any) -> dict[str, Any]:
    return {
        "name": segment.name,
        "layout": segment.layout,
        "columns": list(segment.columns),
        "updatedAt": segment.updated_at.isoformat().replace("+00:00", "Z") if segment.updated_at else None,
    }


@route("GET", "/segments", Access.MEMBER)
def list_segments(context: Context) -> ApiResponse:
    found, problems = _segments(context.settings)
    return json_response(200, {"segments": [_segment_to_api(item) for item in found], "errors": problems})


# ---------------------------------------------------------------------------------------------------
# Exports


def _validated_export(context: Context, body: dict[str, Any]) -> tuple[Connection, list[str], dict[str, str]]:
    """Check an export body against stored state: connection, segments, and the mapping's columns."""
    from . import mapping

    try:
        field_mapping = mapping.FieldMapping.from_dict(body["mapping"])
    except mapping.MappingError as error:
        raise ApiProblem("validation_failed", f"mapping: {error}", [FieldError("mapping", str(error))]) from None
    try:
        connection = context.store.get_connection(body["connectionId"])
    except DocumentNotFoundError:
        raise ApiProblem("unknown_connection", f"connection {body['connectionId']!r} does not exist",
                         [FieldError("connectionId", "names no connection")]) from None
    _require_usable(context, connection)

    chosen = _chosen_segments(context.settings, body["segments"])
    errors = []
    for index, segment in enumerate(chosen):
        try:
            mapping.bind(field_mapping, segment.columns, segment.name)
        except mapping.MappingError as error:  # the message names the segment and the missing columns
            errors.append(FieldError(f"segments[{index}]", str(error)))
    if errors:
        raise ApiProblem("mapping_invalid", "; ".join(error.message for error in errors), errors)
    return connection, [segment.name for segment in chosen], field_mapping.to_dict()


def _chosen_segments(settings: Settings, names: list[str]) -> list[Any]:
    """The segments an export names, found as the run engine finds them (case-insensitively)."""
    found, problems = _segments(settings)
    by_name = {segment.name.lower(): segment for segment in found}
    missing = [(index, name) for index, name in enumerate(names) if name.lower() not in by_name]
    if missing:
        names_missing = [name for _, name in missing]
        unreadable = f"; unreadable exports: {'; '.join(problems)}" if problems else ""
        raise ApiProblem("unknown_segments", f"no segment named {', '.join(map(repr, names_missing))} in container "
                         f"{settings.segments_container!r}{unreadable}",
                         [FieldError(f"segments[{index}]", f"segment {name!r} does not exist") for index, name in missing],
                         extra={"missingSegments": names_missing})
    chosen = [by_name[name.lower()] for name in names]
    if len({segment.name for segment in chosen}) != len(chosen):
        raise ApiProblem("validation_failed", "segments names the same segment twice",
                         [FieldError("segments", "names the same segment twice (names are case-insensitive)")])
    return chosen


def _export_response(status: int, export: Export, extra_headers: dict[str, str] | None = None) -> ApiResponse:
    headers = {"ETag": export.etag} if export.etag else {}
    return json_response(status, export.to_api(), {**headers, **(extra_headers or {})})


@route("POST", "/exports", Access.MEMBER)
def create_export(context: Context) -> ApiResponse:
    body = parse_body(context.request, EXPORT_FIELDS)
    connection, segment_names, field_mapping = _validated_export(context, body)
    now = utc_now()
    export = Export(
        id=new_id(), display_name=body["displayName"].strip(), connection_id=connection.id,
        segments=segment_names, mapping=field_mapping, run_on=list(body["runOn"]),
        tag_contacts=body["tagContacts"], created_at=now, updated_at=now, created_by=context.identity,
    )
    context.store.put_export(export)  # saving never runs it
    log.info("export %s created by %s", export.id, context.identity)
    return _export_response(201, export, _location(f"exports/{export.id}"))


@route("GET", "/exports", Access.MEMBER)
def list_exports(context: Context) -> ApiResponse:
    exports = context.store.list_exports()
    if not context.is_admin:
        usable = {item.id for item in context.store.list_connections() if item.usable_by_contributors}
        exports = [item for item in exports if item.connection_id in usable]
    return json_response(200, {"exports": [item.to_api() for item in exports]})


@route("GET", "/exports/{exportId}", Access.MEMBER)
def get_export(context: Context) -> ApiResponse:
    return _export_response(200, _get_export(context, context.params["exportId"]))


@route("PUT", "/exports/{exportId}", Access.MEMBER)
def replace_export(context: Context) -> ApiResponse:
    current = _get_export(context, context.params["exportId"])
    if_match = context.request.headers.get("If-Match")
    if if_match and if_match.strip() not in ("*", current.etag):
        raise ApiProblem("precondition_failed", f"export {current.id!r} changed since you read it; GET it again")
    body = parse_body(context.request, EXPORT_FIELDS)
    connection, segment_names, field_mapping = _validated_export(context, body)
    export = Export(
        id=current.id, display_name=body["displayName"].strip(), connection_id=connection.id,
        segments=segment_names, mapping=field_mapping, run_on=list(body["runOn"]),
        tag_contacts=body["tagContacts"], created_at=current.created_at, updated_at=utc_now(),
        created_by=current.created_by,
    )
    try:
        context.store.put_export(export, if_match=current.etag)
    except DocumentConflictError:
        code = "precondition_failed" if if_match else "edit_conflict"
        raise ApiProblem(code, f"export {current.id!r} was changed at the same time; GET it and retry") from None
    log.info("export %s replaced by %s", export.id, context.identity)
    return _export_response(200, export)


@route("DELETE", "/exports/{exportId}", Access.MEMBER)
def delete_export(context: Context) -> ApiResponse:
    export = _get_export(context, context.params["exportId"])
    # Runs first: queued chunks of a deleted export must do nothing further.
    _runs().cancel_export_runs(context.settings, export.id)
    try:
        context.store.delete_export(export.id)
    except DocumentNotFoundError:
        pass  # deleted at the same time by someone else: the outcome the caller wants
    log.info("export %s deleted by %s", export.id, context.identity)
    return ApiResponse(204)


# ---------------------------------------------------------------------------------------------------
# Runs


def _runs():
    try:
        from . import runs
    except ImportError as error:
        raise ApiProblem("not_implemented", f"the run engine is not available: {error}") from None
    return runs


def _limit(context: Context, default: int = 50, maximum: int = 1000) -> int:
    raw = context.request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiProblem("validation_failed", f"limit must be a whole number from 1 to {maximum}",
                         [FieldError("limit", f"must be a whole number from 1 to {maximum}")])
    return int(raw)


@route("POST", "/exports/{exportId}/runs", Access.MEMBER)
def start_run(context: Context) -> ApiResponse:
    export = _get_export(context, context.params["exportId"])
    runs = _runs()
    try:
        run = runs.start_run(context.settings, export, "manual")
    except runs.RunInProgressError as error:
        raise ApiProblem("run_in_progress", f"export {export.id!r} has run {error.run_id!r} in progress; wait for "
                         "it or cancel it", extra={"runId": error.run_id}) from None
    view = run.to_api()
    log.info("run %s of export %s started by %s", view["runId"], export.id, context.identity)
    return json_response(202, {"runId": view["runId"], "status": view["status"]}, _location(f"runs/{view['runId']}"))


@route("GET", "/exports/{exportId}/runs", Access.MEMBER)
def list_runs(context: Context) -> ApiResponse:
    export = _get_export(context, context.params["exportId"])
    limit = _limit(context)
    runs = _runs().list_runs(context.settings, export.id, limit=limit)
    return json_response(200, {"runs": [run.to_api() for run in runs]})


def _get_run(context: Context) -> Any:
    """A run the caller may see: through its export, as for the export itself."""
    runs = _runs()
    run_id = context.params["runId"]
    try:
        run = runs.get_run(context.settings, run_id)
    except runs.RunNotFoundError:
        raise ApiProblem("run_not_found", f"run {run_id!r} does not exist") from None
    if not context.is_admin:
        try:
            _get_export(context, run.export_id)
        except ApiProblem as problem:
            if problem.code != "export_not_found":
                raise
            raise ApiProblem("forbidden", f"the export of run {run_id!r} was deleted; only admins can see "
                             "its runs") from None
    return run


@route("GET", "/runs/{runId}", Access.MEMBER)
def get_run(context: Context) -> ApiResponse:
    return json_response(200, _get_run(context).to_api())


@route("GET", "/runs/{runId}/rejects", Access.MEMBER)
def get_rejects(context: Context) -> ApiResponse:
    run = _get_run(context)
    run_id = run.to_api()["runId"]
    csv_bytes = _runs().rejects_csv(context.settings, run_id)
    return ApiResponse(200, csv_bytes, {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="rejects-{run_id}.csv"',
    })


@route("POST", "/runs/{runId}/cancel", Access.MEMBER)
def cancel_run(context: Context) -> ApiResponse:
    run = _get_run(context)
    cancelled = _runs().cancel_run(context.settings, run.to_api()["runId"])
    log.info("run %s cancelled by %s", run.to_api()["runId"], context.identity)
    return json_response(200, cancelled.to_api())
