"""The Omnisend sandbox: a local stand-in for Omnisend's REST API (version 2026-03-15) on loopback.

A real HTTP server (ThreadingHTTPServer) implementing the part of the API this project uses:
`POST/GET /contacts`, `GET /contacts/{id}`, `POST/DELETE /contacts/tags`, `POST/GET /batches`,
`GET /batches/{batchID}`, `GET /batches/{batchID}/items` and `GET /brands/current`, under `/api`.
It authenticates and versions like Omnisend, validates bodies and query parameters against the
project's contract (tests/contracts/omnisend-<version>.json, derived from the official OpenAPI
files), enforces per-brand sliding-window rate limits, runs batches asynchronously and can inject
faults. Batches overlap: each one is pending and then inProgress for at least `batch_step_seconds`,
while its items are applied in the order the batches were created; items that match the contract
pass a check compiled from it, and only the others go through jsonschema for their error list. Its
state is read in-process (tests) or over a small admin surface under `/_sandbox`
(separate processes: `make run`, benchmarks); the client never calls the admin surface.

    python -m tools.omnisend_sandbox --port 8765 [--key KEY] [--window-seconds N]
"""
from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import gc
import json
import heapq
import math
import random
import re
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlencode, urlsplit

from jsonschema import Draft202012Validator

API_VERSION = "2026-03-15"
CONTRACT_PATH = Path(__file__).resolve().parent.parent / "tests" / "contracts" / f"omnisend-{API_VERSION}.json"
ALL_SCOPES = ("brands.read", "contacts.read", "contacts.write")
MAX_BODY_BYTES = 1_000_000
MAX_CONTACT_TAGS = 100
PROBLEM_TYPE = "https://problems.omnisend.com/"
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
# Custom properties, as Omnisend's contacts reference states them (not in its OpenAPI files): at most
# 200 per contact; names of Latin letters, digits and _, at most 128 characters, case-sensitive;
# string values at most 2048 characters; no objects.
MAX_CUSTOM_PROPERTIES = 200
CUSTOM_PROPERTY_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")
MAX_CUSTOM_STRING = 2048
PHONE_PATTERN = re.compile(r"^\+[1-9]\d{6,14}$")
# The sandbox's stand-in for Omnisend's country-name lookup (used when only `country` is sent).
COUNTRY_CODES = {
    "australia": "AU", "austria": "AT", "belgium": "BE", "brazil": "BR", "canada": "CA",
    "czechia": "CZ", "denmark": "DK", "estonia": "EE", "finland": "FI", "france": "FR",
    "germany": "DE", "ireland": "IE", "italy": "IT", "japan": "JP", "latvia": "LV",
    "lithuania": "LT", "mexico": "MX", "netherlands": "NL", "new zealand": "NZ", "norway": "NO",
    "poland": "PL", "portugal": "PT", "spain": "ES", "sweden": "SE", "switzerland": "CH",
    "united kingdom": "GB", "united states": "US", "united states of america": "US", "usa": "US",
}


# ---------------------------------------------------------------------------------------------
# The contract: validation of requests and responses against the project's facts-only schema.
# ---------------------------------------------------------------------------------------------

def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 marks nullable fields with `nullable: true`; JSON Schema spells it as a type list."""
    if isinstance(node, dict):
        converted = {key: _openapi_to_jsonschema(value) for key, value in node.items() if key != "nullable"}
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            converted["type"] = [node["type"], "null"]
        return converted
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    return node


def _field_errors(validator: Draft202012Validator, instance: Any, prefix: str = "") -> list[dict]:
    """Every schema violation as an Omnisend FieldError (dot-separated field path, code, message)."""
    found = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join([prefix] * bool(prefix) + [str(part) for part in error.absolute_path])
        if error.validator == "required":
            present = error.instance if isinstance(error.instance, dict) else {}
            for name in error.validator_value:
                if name not in present:
                    found.append(_field_error(f"{path}.{name}" if path else name, "required", "is required"))
            continue
        code, message = _describe(error)
        found.append(_field_error(path or "body", code, message))
    return found


def _describe(error) -> tuple[str, str]:
    value = error.validator_value
    if error.validator == "type":
        return "invalid_type", f"must be of type {value if isinstance(value, str) else ' or '.join(value)}"
    if error.validator == "enum":
        return "invalid_enum", "must be one of " + ", ".join(map(str, value))
    if error.validator == "maxItems":
        return "too_many_items", f"must have at most {value} items"
    if error.validator == "minItems":
        return "too_few_items", f"must have at least {value} items"
    if error.validator == "maximum":
        return "out_of_range", f"must be at most {value}"
    if error.validator == "minimum":
        return "out_of_range", f"must be at least {value}"
    if error.validator == "maxLength":
        return "too_long", f"must be at most {value} characters"
    return "invalid", error.message


def _field_error(field_name: str, code: str, message: str) -> dict:
    return {"field": field_name, "code": code, "message": message}


# A fast validity check compiled from a schema, for the hot path (every item of every batch). It
# knows only the keywords below, with jsonschema's meaning; a schema using any other keyword is
# not compiled (jsonschema alone judges it). It answers only "valid": when it says invalid, the
# caller runs jsonschema for the error list, so the errors are jsonschema's whatever the check says.
_FAST_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}
_FAST_KEYWORDS = frozenset({"$ref", "type", "enum", "properties", "required", "additionalProperties",
                            "items", "maxItems", "allOf"})


class _NotCompilable(Exception):
    """The schema uses something the fast check does not implement."""


def _every(checks: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    """One predicate true when all of `checks` are (unrolled for the usual two or three)."""
    if not checks:
        return lambda value: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda value: first(value) and second(value)
    if len(checks) == 3:
        first, second, third = checks
        return lambda value: first(value) and second(value) and third(value)
    return lambda value: all(check(value) for check in checks)


def _compile_fast_check(ref: str, components: dict) -> Callable[[Any], bool] | None:
    """A predicate that is True only for instances jsonschema finds valid against `ref` (None when the
    schema uses a keyword the fast check does not know)."""
    compiled: dict[str, Callable[[Any], bool]] = {}

    def resolve(target: str) -> Callable[[Any], bool]:
        if target not in compiled:
            parts = target.split("/") if isinstance(target, str) else []
            if parts[:2] != ["#", "components"] or len(parts) != 4:
                raise _NotCompilable(target)
            try:
                schema = components[parts[2]][parts[3]]
            except KeyError:
                raise _NotCompilable(target) from None
            done: list[Callable[[Any], bool]] = []
            compiled[target] = lambda value: done[0](value)  # a schema may refer to itself
            done.append(node(schema))
        return compiled[target]

    def node(schema: Any) -> Callable[[Any], bool]:
        if schema is True or schema == {}:
            return lambda value: True
        if schema is False:
            return lambda value: False
        if not isinstance(schema, dict) or not set(schema) <= _FAST_KEYWORDS:
            raise _NotCompilable(schema)
        checks: list[Callable[[Any], bool]] = []
        if "$ref" in schema:
            checks.append(resolve(schema["$ref"]))
        if "type" in schema:
            names = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
            if not isinstance(names, list) or not names or not all(name in _FAST_TYPES for name in names):
                raise _NotCompilable(schema["type"])
            kinds = tuple(_FAST_TYPES[name] for name in names)  # no int among them: True is no int here
            checks.append(lambda value: isinstance(value, kinds))
        if "enum" in schema:
            allowed = schema["enum"]
            if not isinstance(allowed, list) or not all(isinstance(choice, str) for choice in allowed):
                raise _NotCompilable(allowed)
            choices = frozenset(allowed)
            checks.append(lambda value: type(value) is str and value in choices)
        checks += _object_checks(schema)
        checks += _array_checks(schema)
        if "allOf" in schema:
            if not isinstance(schema["allOf"], list) or not schema["allOf"]:
                raise _NotCompilable(schema["allOf"])
            checks += [node(part) for part in schema["allOf"]]
        return _every(checks)

    def _object_checks(schema: dict) -> list[Callable[[Any], bool]]:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", True)
        if not isinstance(properties, dict) or not isinstance(required, list) or not all(
                isinstance(name, str) for name in required):
            raise _NotCompilable(schema)
        if not properties and not required and extra is True:
            return []
        known = {name: node(sub) for name, sub in properties.items()}
        other = node(extra)
        needed = tuple(required)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True  # these keywords say nothing about other types
            for name in needed:
                if name not in value:
                    return False
            for name, item in value.items():
                sub = known.get(name, other)
                if not sub(item):
                    return False
            return True
        return [check]

    def _array_checks(schema: dict) -> list[Callable[[Any], bool]]:
        checks: list[Callable[[Any], bool]] = []
        if "maxItems" in schema:
            limit = schema["maxItems"]
            if type(limit) is not int or limit < 0:
                raise _NotCompilable(limit)
            checks.append(lambda value: not isinstance(value, list) or len(value) <= limit)
        if "items" in schema:
            each = node(schema["items"])

            def every_item(value: Any) -> bool:
                if isinstance(value, list):
                    for item in value:
                        if not each(item):
                            return False
                return True
            checks.append(every_item)
        return checks

    try:
        return resolve(ref)
    except (_NotCompilable, RecursionError):
        return None


@dataclass(frozen=True)
class Operation:
    """One method on one path template of the contract."""

    method: str
    template: str
    spec: dict

    @property
    def scopes(self) -> tuple[str, ...]:
        """Scopes of which a key needs at least one (the operation's OAuth scopes)."""
        for requirement in self.spec.get("security", []):
            if requirement.get("Bearer"):
                return tuple(requirement["Bearer"])
        return ()


class Contract:
    """The project's Omnisend contract, loaded from tests/contracts, with validators by schema name."""

    def __init__(self, document: dict):
        self.document = document
        self._components = _openapi_to_jsonschema(document["components"])
        self._validators: dict[str, Draft202012Validator] = {}
        self._fast_checks: dict[str, Callable[[Any], bool] | None] = {}
        self._routes = self._compile_routes(document["paths"])

    @classmethod
    @lru_cache(maxsize=1)
    def load(cls, path: Path = CONTRACT_PATH) -> "Contract":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    @staticmethod
    def _compile_routes(paths: dict) -> list[tuple[re.Pattern, str]]:
        routes = []
        for template in paths:
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
            routes.append((re.compile(f"^{pattern}$"), template))
        # Literal segments win over parameters: /contacts/tags is not /contacts/{id}.
        routes.sort(key=lambda route: route[1].count("{"))
        return routes

    def match(self, path: str) -> tuple[str, dict[str, str]] | None:
        for pattern, template in self._routes:
            found = pattern.match(path)
            if found:
                return template, found.groupdict()
        return None

    def operation(self, method: str, template: str) -> Operation | None:
        spec = self.document["paths"].get(template, {}).get(method.lower())
        return Operation(method.upper(), template, spec) if spec is not None else None

    def validator(self, ref: str) -> Draft202012Validator:
        """A validator for `#/components/schemas/<name>` (or any other component reference)."""
        if ref not in self._validators:
            self._validators[ref] = Draft202012Validator({"$ref": ref, "components": self._components})
        return self._validators[ref]

    def errors(self, ref: str, instance: Any, prefix: str = "") -> list[dict]:
        """Every violation of `ref` as FieldErrors: a compiled check passes valid instances quickly;
        jsonschema finds the errors of the rest (and judges schemas the check cannot compile)."""
        if ref not in self._fast_checks:
            self._fast_checks[ref] = _compile_fast_check(ref, self._components)
        fast = self._fast_checks[ref]
        if fast is not None and fast(instance):
            return []
        return _field_errors(self.validator(ref), instance, prefix)

    def schema_errors(self, schema_name: str, instance: Any, prefix: str = "") -> list[dict]:
        return self.errors(f"#/components/schemas/{schema_name}", instance, prefix)

    def _resolve(self, node: dict) -> dict:
        while "$ref" in node and not node["$ref"].startswith("#/components/schemas/"):
            section, name = node["$ref"].split("/")[-2:]
            node = self.document["components"][section][name]
        return node

    def _schema_ref(self, content: dict | None) -> str | None:
        for media in (content or {}).values():
            schema = media.get("schema", {})
            return schema.get("$ref")
        return None

    def request_body_errors(self, operation: Operation, body: Any) -> list[dict]:
        request_body = self._resolve(operation.spec.get("requestBody", {}))
        if not request_body:
            return []
        if body is None:
            if request_body.get("required"):
                return [_field_error("body", "required", "a JSON request body is required")]
            return []
        ref = self._schema_ref(request_body.get("content"))
        return self.errors(ref, body) if ref else []

    def parameters(self, operation: Operation, location: str) -> list[dict]:
        resolved = [self._resolve(param) for param in operation.spec.get("parameters", [])]
        return [param for param in resolved if param.get("in") == location]

    def query_errors(self, operation: Operation, query: dict[str, str]) -> list[dict]:
        errors = []
        for param in self.parameters(operation, "query"):
            name, schema = param["name"], param.get("schema", {})
            if name not in query:
                if param.get("required"):
                    errors.append(_field_error(name, "required", "query parameter is required"))
                continue
            value: Any = query[name]
            if schema.get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    errors.append(_field_error(name, "invalid_type", "must be an integer"))
                    continue
            errors += _field_errors(Draft202012Validator(_openapi_to_jsonschema(schema)), value, name)
        return errors

    def response_errors(self, method: str, template: str, status: int, body: Any) -> list[str]:
        """Why a response does not match the contract ([] when it does)."""
        operation = self.operation(method, template)
        declared = (operation.spec.get("responses", {}) if operation else {}).get(str(status))
        if declared is not None:
            ref = self._schema_ref(declared.get("content"))
            if ref is None:
                return [] if body is None else [f"{status} declares no body but one was sent"]
        elif status == 429:
            ref = "#/components/schemas/RateLimitProblem"
        elif status == 400:
            ref = "#/components/schemas/ValidationProblem"
        elif status >= 400:
            ref = "#/components/schemas/Problem"
        else:
            return [f"{method} {template} does not declare a {status} response"]
        if body is None:
            return [f"{status} response has no body; expected {ref.rsplit('/', 1)[-1]}"]
        return [f"{e['field']}: {e['message']}" for e in _field_errors(self.validator(ref), body)]


# ---------------------------------------------------------------------------------------------
# The sandbox's state.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestRecord:
    """One request to /api as the sandbox saw it (admin requests are not recorded)."""

    time: float  # time.monotonic() when the request arrived
    method: str
    path: str  # without /api and without the query string, e.g. "/contacts/tags"
    status: int  # 0 when the connection was dropped on purpose
    brand_id: str | None
    kind: str  # "general" | "tags"
    body: Any  # the parsed JSON request body, or None
    query: dict[str, str] = field(default_factory=dict)
    response: Any = None  # the parsed JSON response body, or None
    template: str | None = None  # the contract path the request matched, e.g. "/contacts/{id}"


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 12.0
    drop_rate: float = 0.0
    rate_limit_storm: int = 0
    stop_batch_rate: float = 0.0
    item_error_emails: frozenset[str] = frozenset()
    seed: int = 0
    tag_error_rate: float = 0.0  # share of POST/DELETE /contacts/tags answered 500 (after taking a slot)


@dataclass
class ApiKey:
    brand_id: str
    scopes: frozenset[str]
    retired: bool = False


@dataclass
class BrandState:
    contacts: dict[str, dict] = field(default_factory=dict)  # contact id -> stored contact
    by_identifier: dict[tuple[str, str], str] = field(default_factory=dict)  # (type, id) -> contact id
    batches: dict[str, dict] = field(default_factory=dict)  # batch id -> batch (with its item results)
    welcome_messages: list[str] = field(default_factory=list)
    windows: dict[str, deque] = field(default_factory=lambda: {"general": deque(), "tags": deque()})


class Problem(Exception):
    """An RFC 9457 problem answer, raised inside the request pipeline."""

    def __init__(self, status: int, title: str, detail: str, *, errors: list[dict] | None = None,
                 retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.errors, self.retry_after = errors, retry_after

    def body(self) -> dict:
        slug = re.sub(r"[^a-z]+", "-", self.title.lower()).strip("-")
        body = {"type": PROBLEM_TYPE + slug, "title": self.title, "status": self.status,
                "detail": self.detail, "instance": f"urn:omnisend:request:{uuid.uuid4()}"}
        if self.errors is not None:
            body["errors"] = self.errors
        if self.retry_after is not None:
            body["retryAfter"] = self.retry_after
        return body


def validation_problem(errors: list[dict]) -> Problem:
    return Problem(400, "Validation failed", "Request contains invalid or missing fields", errors=errors)


_last_now: tuple[int, str] = (-1, "")  # (milliseconds since the epoch, as text): many calls per millisecond


def _now_iso() -> str:
    global _last_now
    millis = time.time_ns() // 1_000_000
    if _last_now[0] != millis:
        moment = dt.datetime.fromtimestamp(millis // 1000, dt.timezone.utc).replace(microsecond=millis % 1000 * 1000)
        _last_now = (millis, moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    return _last_now[1]


def _parse_time(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


_ids = random.Random(secrets.randbits(128))  # object IDs need to be unique, not secret


def _object_id() -> str:
    return f"{_ids.getrandbits(96):024x}"


class _Dropped(Exception):
    """The fault injector decided to drop this connection without an answer."""


# ---------------------------------------------------------------------------------------------
# The sandbox.
# ---------------------------------------------------------------------------------------------

class OmnisendSandbox:
    def __init__(self, *, port: int = 0, requests_per_minute: int = 400, tag_requests_per_minute: int = 60,
                 window_seconds: float = 60.0, batch_step_seconds: float = 0.02):
        self.port = port
        self.limits = {"general": requests_per_minute, "tags": tag_requests_per_minute}
        self.window_seconds = window_seconds
        self.batch_step_seconds = batch_step_seconds
        self.contract = Contract.load()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._keys: dict[str, ApiKey] = {}
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        # Steps of batches due later: (due on time.monotonic(), order, step, brand ID, batch ID). One
        # thread takes them in due order, so the waits of different batches overlap.
        self._timeline: list[tuple[float, int, str, str, str]] = []
        self._timeline_changed = threading.Condition(threading.Lock())
        self._last_start = 0.0  # no batch starts before one created earlier (even if the step shrinks)
        self._reset_state()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "OmnisendSandbox":
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        server.daemon_threads = True
        server.sandbox = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self._stopping.clear()
        serve = lambda: server.serve_forever(poll_interval=0.05)  # noqa: E731 (quick to stop in tests)
        for target, name in ((serve, "omnisend-sandbox-http"),
                             (self._run_batches, "omnisend-sandbox-batches")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes slow answers and the batch worker
        with self._timeline_changed:
            self._timeline_changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> "OmnisendSandbox":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    # -- configuration -----------------------------------------------------------------------

    def add_key(self, brand_id: str = "brand1", scopes: Iterable[str] = ALL_SCOPES, retired: bool = False,
                *, key: str | None = None) -> str:
        """Register an API key `<brandID>-<secret>`; a retired key is known but refused (revoked)."""
        key = key or f"{brand_id}-{secrets.token_hex(16)}"
        if not key.startswith(f"{brand_id}-"):
            raise ValueError("an Omnisend API key looks like <brandID>-<secret>, starting with its brand ID")
        with self._lock:
            self._keys[key] = ApiKey(brand_id, frozenset(scopes), retired)
            self._brand(brand_id)
        return key

    def set_faults(self, *, error_rate: float = 0.0, slow_rate: float = 0.0, slow_seconds: float = 12.0,
                   drop_rate: float = 0.0, rate_limit_storm: int = 0, stop_batch_rate: float = 0.0,
                   item_error_emails: Iterable[str] = (), seed: int = 0, tag_error_rate: float = 0.0) -> None:
        """Faults from now on: shares of 5xx / slow / dropped answers, the next N requests answered 429,
        a share of batches ending `stopped`, emails whose batch items fail, and a share of tag calls
        (POST/DELETE /contacts/tags) answered 500 while the rest of the API works."""
        with self._lock:
            self._faults = Faults(error_rate, slow_rate, slow_seconds, drop_rate, rate_limit_storm,
                                  stop_batch_rate, frozenset(item_error_emails), seed, tag_error_rate)
            self._storm_left = rate_limit_storm
            self._random = random.Random(seed)

    def reset(self) -> None:
        """Forget contacts, batches, the log, counters and faults (keys stay valid)."""
        with self._lock:
            self._reset_state()

    def _reset_state(self) -> None:
        self._brands: dict[str, BrandState] = {}
        self._log: list[RequestRecord] = []
        self._rate_limited = 0
        self._faults = Faults()
        self._storm_left = 0
        self._random = random.Random(0)
        for key in getattr(self, "_keys", {}).values():
            self._brand(key.brand_id)

    def _brand(self, brand_id: str) -> BrandState:
        return self._brands.setdefault(brand_id, BrandState())

    # -- state for tests and benchmarks ------------------------------------------------------

    def contacts(self, brand_id: str = "brand1") -> dict[str, dict]:
        """email -> contact as GET /contacts/{id} would show it, with `tags` sorted."""
        with self._lock:
            brand = self._brand(brand_id)
            views = {}
            for contact in brand.contacts.values():
                if contact.get("email"):
                    view = _contact_view(contact)
                    view["tags"] = sorted(view.get("tags", []))
                    views[contact["email"]] = view
            return views

    def tags_of(self, email: str, brand_id: str = "brand1") -> list[str] | None:
        """The tags of the contact with this email (sorted), or None when there is no such contact."""
        with self._lock:
            brand = self._brand(brand_id)
            contact_id = brand.by_identifier.get(("email", email))
            return sorted(brand.contacts[contact_id].get("tags", [])) if contact_id else None

    def all_tags(self, brand_id: str = "brand1") -> dict[str, list[str]]:
        """email -> sorted tags of every contact with an email (cheaper than `contacts()` for many)."""
        with self._lock:
            return {c["email"]: sorted(c.get("tags", [])) for c in self._brand(brand_id).contacts.values()
                    if c.get("email")}

    def tag_by_hand(self, email: str, add: Iterable[str] = (), remove: Iterable[str] = (),
                    brand_id: str = "brand1") -> list[str]:
        """What a marketer does in Omnisend's app: add or remove tags on a contact, creating it (not
        subscribed, no welcome message) if there is none with this email. Not an API request: not
        logged, not rate limited. Returns the contact's tags."""
        add, remove = list(dict.fromkeys(add)), set(remove)
        with self._lock:
            brand = self._brand(brand_id)
            contact_id = brand.by_identifier.get(("email", email))
            if contact_id is None:
                contact = _new_contact()
                self._apply_identifier(brand, contact, {"type": "email", "id": email}, _now_iso())
                brand.contacts[contact["id"]] = contact
            else:
                contact = brand.contacts[contact_id]
            tags = [t for t in contact.get("tags", []) if t not in remove]
            contact["tags"] = (tags + [t for t in add if t not in tags])[:MAX_CONTACT_TAGS]
            contact["updatedAt"] = _now_iso()
            contact["_updatedSeq"] = next(_SEQUENCE)
            return sorted(contact["tags"])

    def request_log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    @property
    def rate_limited_count(self) -> int:
        with self._lock:
            return self._rate_limited

    @property
    def welcome_messages(self) -> list[str]:
        with self._lock:
            return [email for brand in self._brands.values() for email in brand.welcome_messages]

    def batches(self, brand_id: str = "brand1") -> dict[str, dict]:
        with self._lock:
            return {bid: _batch_view(b, with_items=True) for bid, b in self._brand(brand_id).batches.items()}

    def contract_violations(self) -> list[str]:
        """Every logged response that does not match the contract, and every accepted (2xx) request
        whose query or body does not: what the test suite checks after each test."""
        found = []
        for number, record in enumerate(self.request_log()):
            if record.template is None or record.status == 0:
                continue  # unknown path (a plain 404) or a connection dropped on purpose
            where = f"#{number} {record.method} {record.path} -> {record.status}"
            found += [f"{where}: response {e}" for e in
                      self.contract.response_errors(record.method, record.template, record.status, record.response)]
            operation = self.contract.operation(record.method, record.template)
            if operation is not None and 200 <= record.status < 300:
                errors = self.contract.query_errors(operation, record.query)
                errors += self.contract.request_body_errors(operation, record.body)
                found += [f"{where}: request {e['field']}: {e['message']}" for e in errors]
        return found

    def state(self) -> dict:
        """Everything the admin surface exposes at GET /_sandbox/state."""
        with self._lock:
            return {
                "url": self.url,
                "brands": {
                    brand_id: {
                        "contacts": self.contacts(brand_id),
                        "welcomeMessages": list(brand.welcome_messages),
                        "batches": {bid: _batch_view(b) for bid, b in brand.batches.items()},
                    }
                    for brand_id, brand in self._brands.items()
                },
                "rateLimitedCount": self._rate_limited,
                "requestCount": len(self._log),
            }

    # -- the request pipeline ----------------------------------------------------------------

    def handle_api(self, method: str, raw_path: str, headers, raw_body: bytes) -> tuple[int, Any, float]:
        """Answer one /api request: (status, JSON body or None, seconds to hold the answer back)."""
        arrived = time.monotonic()
        split = urlsplit(raw_path)
        path = split.path[len("/api"):] or "/"
        query = {name: values[-1] for name, values in parse_qs(split.query, keep_blank_values=True).items()}
        context = {"brand_id": None, "kind": "general", "body": None, "template": None}
        delay = 0.0
        try:
            delay = self._inject_faults()
            status, body = self._answer(method, path, query, headers, raw_body, context)
        except _Dropped:
            self._record(arrived, method, path, 0, context, query, None)
            raise
        except Problem as problem:
            status, body = problem.status, problem.body()
            if status == 429:
                with self._lock:
                    self._rate_limited += 1
        self._record(arrived, method, path, status, context, query, body)
        return status, body, delay

    def _record(self, arrived, method, path, status, context, query, response) -> None:
        record = RequestRecord(arrived, method, path, status, context["brand_id"], context["kind"],
                               context["body"], query, response, context["template"])
        with self._lock:
            self._log.append(record)

    def _inject_faults(self) -> float:
        """Raise the injected fault for this request, if any; returns how long to delay the answer."""
        with self._lock:
            faults, draw = self._faults, self._random.random
            drop, error, slow = draw(), draw(), draw()  # always three draws: a seed replays exactly
            if self._storm_left > 0:
                self._storm_left -= 1
                raise Problem(429, "Too many requests", "Rate limit exceeded", retry_after=1)
            if drop < faults.drop_rate:
                raise _Dropped()
            if error < faults.error_rate:
                status = self._random.choice((500, 502, 503))
                raise Problem(status, "Internal server error", "Unexpected error occurred")
            return faults.slow_seconds if slow < faults.slow_rate else 0.0

    def _tag_call_fails(self) -> bool:
        with self._lock:
            return self._faults.tag_error_rate > 0 and self._random.random() < self._faults.tag_error_rate

    def _answer(self, method, path, query, headers, raw_body, context) -> tuple[int, Any]:
        matched = self.contract.match(path)
        if matched is None:
            raise Problem(404, "Not found", f"no such resource: {path}")
        template, path_params = matched
        context["template"] = template
        context["kind"] = "tags" if template == "/contacts/tags" else "general"
        operation = self.contract.operation(method, template)
        route = _ROUTES.get((method, template))
        if operation is None or route is None:
            raise Problem(405, "Method not allowed", f"{method} is not supported on {template}")
        self._check_version(headers.get("Omnisend-Version"))
        api_key = self._authenticate(headers.get("Authorization"))
        context["brand_id"] = api_key.brand_id
        if operation.scopes and not api_key.scopes & set(operation.scopes):
            raise Problem(403, "Forbidden", "Insufficient permissions for this operation: needs one of "
                          + ", ".join(operation.scopes))
        self._take_rate_limit_slot(api_key.brand_id, context["kind"])
        if context["kind"] == "tags" and self._tag_call_fails():
            raise Problem(500, "Internal server error", "Unexpected error occurred")
        body = self._parse_body(raw_body)
        context["body"] = body
        errors = self.contract.query_errors(operation, query) + self.contract.request_body_errors(operation, body)
        if (method, template) == ("POST", "/contacts") and isinstance(body, dict):
            errors += _contact_semantic_errors(body)  # every bad field at once, schema or format
        if errors:
            raise validation_problem(errors)
        return route(self, api_key, query, body, **path_params)

    def _check_version(self, version: str | None) -> None:
        if not version:
            raise validation_problem([_field_error("Omnisend-Version", "required", "the API version header is required")])
        if version == API_VERSION:
            return
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", version) and version < API_VERSION:
            raise Problem(410, "Gone", f"API version {version} has been retired; use {API_VERSION}")
        raise validation_problem([_field_error("Omnisend-Version", "invalid_value", f"unknown API version {version!r}")])

    def _authenticate(self, authorization: str | None) -> ApiKey:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme != "Omnisend-API-Key" or not key.strip():
            raise Problem(401, "Unauthorized", "Authentication is missing: send Authorization: Omnisend-API-Key <key>")
        with self._lock:
            api_key = self._keys.get(key.strip())
        if api_key is None:
            raise Problem(401, "Unauthorized", "The API key is invalid")
        if api_key.retired:
            raise Problem(401, "Unauthorized", "The API key has been revoked")
        return api_key

    def _take_rate_limit_slot(self, brand_id: str, kind: str) -> None:
        """Sliding window per brand and kind: a request counts if it was accepted within the window."""
        now = time.monotonic()
        with self._lock:
            window = self._brand(brand_id).windows[kind]
            while window and window[0] <= now - self.window_seconds:
                window.popleft()
            if len(window) >= self.limits[kind]:
                retry_after = max(1, math.ceil(window[0] + self.window_seconds - now))
                raise Problem(429, "Too many requests",
                              f"Rate limit of {self.limits[kind]} requests per window exceeded",
                              retry_after=retry_after)
            window.append(now)

    @staticmethod
    def _parse_body(raw_body: bytes) -> Any:
        if not raw_body:
            return None
        if len(raw_body) > MAX_BODY_BYTES:
            raise Problem(413, "Payload too large", f"request body exceeds {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(raw_body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise validation_problem([_field_error("body", "invalid_json", f"not valid JSON: {exc}")]) from None

    # -- contacts ----------------------------------------------------------------------------

    def _post_contact(self, api_key: ApiKey, query, body, **_) -> tuple[int, Any]:
        with self._lock:
            return self._upsert(self._brand(api_key.brand_id), body, update_only=False)

    def _upsert(self, brand: BrandState, body: dict, *, update_only: bool) -> tuple[int, dict]:
        errors = self._item_fault_errors(body)
        if errors:
            raise validation_problem(errors)
        identifiers = body["identifiers"]
        owners = [brand.by_identifier.get((ident["type"], ident["id"])) for ident in identifiers]
        contact_id = next((owner for owner in owners if owner), None)
        if contact_id is None and update_only:
            raise Problem(404, "Not found", "Contact not found")
        created = contact_id is None
        contact = brand.contacts[contact_id] if contact_id else _new_contact()
        now = _now_iso()
        for ident, owner in zip(identifiers, owners):
            if owner and owner != contact["id"]:
                continue  # an identifier that belongs to another contact is silently ignored
            is_new = owner is None
            self._apply_identifier(brand, contact, ident, now)
            if is_new and ident["type"] == "email" and ident.get("sendWelcomeMessage", True) and created:
                brand.welcome_messages.append(ident["id"])
        _apply_fields(contact, body)
        contact["updatedAt"] = now
        if created:
            brand.contacts[contact["id"]] = contact
        return (201 if created else 200), _contact_view(contact)

    def _item_fault_errors(self, body: dict) -> list[dict]:
        emails = self._faults.item_error_emails
        return [
            _field_error(f"identifiers.{i}.id", "invalid_format", "Must be a valid email address")
            for i, ident in enumerate(body.get("identifiers") or [])
            if isinstance(ident, dict) and ident.get("type") == "email" and ident.get("id") in emails
        ]

    @staticmethod
    def _apply_identifier(brand: BrandState, contact: dict, ident: dict, now: str) -> None:
        key = (ident["type"], ident["id"])
        stored = next((s for s in contact["identifiers"] if (s["type"], s["id"]) == key), None)
        default_channel = "email" if ident["type"] == "email" else "sms"
        if stored is None:
            stored = {"type": ident["type"], "id": ident["id"], "channels": {}}
            contact["identifiers"].append(stored)
            brand.by_identifier[key] = contact["id"]
            if ident["type"] == "email" and not contact.get("email"):
                contact["email"] = ident["id"]
            if ident["type"] == "phone":
                contact.setdefault("phone", []).append(ident["id"])
        for channel, wanted in (ident.get("channels") or {}).items():
            current = stored["channels"].get(channel)
            changed_at = wanted.get("statusChangedAt") or now
            if current and _parse_time(changed_at) < _parse_time(current["statusChangedAt"]):
                continue  # an older status change never overrides a newer one
            stored["channels"][channel] = {"status": wanted["status"], "statusChangedAt": changed_at}
            if wanted["status"] == "subscribed":
                contact.setdefault("optIns", []).append({"channel": channel, "optInAt": changed_at})
        # A new identifier sent without a status is not subscribed (Omnisend's default).
        stored["channels"].setdefault(default_channel, {"status": "nonSubscribed", "statusChangedAt": now})
        if ident.get("consent"):
            consent = {"channel": default_channel, "createdAt": now, **ident["consent"]}
            contact.setdefault("consents", []).append(consent)

    def _get_contact(self, api_key: ApiKey, query, body, id: str) -> tuple[int, Any]:
        with self._lock:
            contact = self._brand(api_key.brand_id).contacts.get(id)
            if contact is None:
                raise Problem(404, "Not found", "Contact not found")
            return 200, _contact_view(contact)

    def _list_contacts(self, api_key: ApiKey, query, body, **_) -> tuple[int, Any]:
        if "tag" in query and "status" in query:
            raise validation_problem([_field_error("tag", "invalid_combination", "tag and status cannot be used together")])
        if "updatedAtFrom" in query and {"email", "phone", "status", "segmentID", "tag"} & set(query):
            raise validation_problem([_field_error("updatedAtFrom", "invalid_combination",
                                                   "updatedAtFrom cannot be combined with other filters")])
        limit = int(query.get("limit", 100))
        sort_key = "_updatedSeq" if query.get("sort") == "updatedAt" else "_createdSeq"
        descending = query.get("direction", "desc") == "desc"
        with self._lock:
            matching = [c for c in self._brand(api_key.brand_id).contacts.values() if _contact_matches(c, query)]
            matching.sort(key=lambda c: c[sort_key], reverse=descending)
            page, has_more, has_before = _cursor_page(matching, sort_key, descending, query, limit)
            views = [_contact_view(c) for c in page]
        cursors = {
            "after": _cursor(page[-1][sort_key]) if page and has_more else None,
            "before": _cursor(page[0][sort_key]) if page and has_before else None,
        }
        return 200, {"contacts": views, "paging": {"limit": limit, "hasMore": has_more, "cursors": cursors}}

    def _change_tags(self, api_key: ApiKey, body: dict, add: bool) -> tuple[int, Any]:
        if not any(body.get(selector) for selector in ("contactIDs", "emails", "phones", "segmentID")):
            raise validation_problem([_field_error("emails", "required",
                                                   "one of contactIDs, emails, phones or segmentID is required")])
        with self._lock:
            brand = self._brand(api_key.brand_id)
            ids = set(body.get("contactIDs") or []) & set(brand.contacts)
            ids |= {brand.by_identifier[("email", e)] for e in body.get("emails") or [] if ("email", e) in brand.by_identifier}
            ids |= {brand.by_identifier[("phone", p)] for p in body.get("phones") or [] if ("phone", p) in brand.by_identifier}
            for contact_id in ids:  # unknown emails, phones and IDs are silently ignored, like Omnisend
                contact = brand.contacts[contact_id]
                tags = contact.setdefault("tags", [])
                if add:
                    tags.extend(t for t in dict.fromkeys(body["tags"]) if t not in tags)
                else:
                    contact["tags"] = [t for t in tags if t not in set(body["tags"])]
                contact["updatedAt"] = _now_iso()
                contact["_updatedSeq"] = next(_SEQUENCE)
        return 202, None

    def _add_tags(self, api_key, query, body, **_):
        return self._change_tags(api_key, body, add=True)

    def _remove_tags(self, api_key, query, body, **_):
        return self._change_tags(api_key, body, add=False)

    # -- batches -----------------------------------------------------------------------------

    def _create_batch(self, api_key: ApiKey, query, body, **_) -> tuple[int, Any]:
        if body["endpoint"] != "contacts":
            raise validation_problem([_field_error("endpoint", "unsupported",
                                                   "the sandbox implements only the contacts endpoint")])
        if "contacts.write" not in api_key.scopes:
            raise Problem(403, "Forbidden", "Insufficient permissions for this operation: needs contacts.write")
        with self._lock:
            batch = {
                "batchID": _object_id(), "method": body["method"], "endpoint": body["endpoint"],
                "origin": body.get("origin", "api"), "status": "pending", "totalCount": len(body["items"]),
                "finishedCount": 0, "errorsCount": 0, "createdAt": _now_iso(),
                "_items": body["items"], "_errors": [], "_responses": [], "_seq": next(_SEQUENCE),
                "_stop": self._random.random() < self._faults.stop_batch_rate,
            }
            self._brand(api_key.brand_id).batches[batch["batchID"]] = batch
            # Scheduled under the lock: batches start in the order they were created.
            self._schedule(self.batch_step_seconds, "start", api_key.brand_id, batch["batchID"])
        return 201, {"batchID": batch["batchID"], "totalCount": batch["totalCount"]}

    def _schedule(self, delay: float, step: str, brand_id: str, batch_id: str) -> None:
        with self._timeline_changed:
            due = time.monotonic() + delay
            if step == "start":
                due = self._last_start = max(due, self._last_start)
            heapq.heappush(self._timeline, (due, next(_SEQUENCE), step, brand_id, batch_id))
            self._timeline_changed.notify()

    def _run_batches(self) -> None:
        """The asynchronous side of batches: pending -> inProgress -> finished (or stopped), each step
        at least `batch_step_seconds` after the one before; the steps of all batches interleave."""
        while not self._stopping.is_set():
            with self._timeline_changed:
                wait = self._timeline[0][0] - time.monotonic() if self._timeline else 0.05
                if wait > 0:
                    self._timeline_changed.wait(min(wait, 0.05))
                    continue
                _, _, step, brand_id, batch_id = heapq.heappop(self._timeline)
            if step == "start":
                self._start_batch(brand_id, batch_id)
            else:
                self._end_batch(brand_id, batch_id)

    def _scheduled(self, brand_id: str, batch_id: str) -> tuple[BrandState | None, dict | None]:
        """A scheduled batch and its brand, None when the sandbox was reset meanwhile (under the lock)."""
        brand = self._brands.get(brand_id)
        return brand, brand.batches.get(batch_id) if brand else None

    def _start_batch(self, brand_id: str, batch_id: str) -> None:
        with self._lock:
            brand, batch = self._scheduled(brand_id, batch_id)
            if batch is None:
                return
            batch["status"], batch["startedAt"] = "inProgress", _now_iso()
            # A stopped batch gives up half way, leaving the rest of its items unprocessed.
            runnable = batch["_items"][: len(batch["_items"]) // 2] if batch["_stop"] else batch["_items"]
        checked = [(item, self._item_errors(item)) for item in runnable]  # pure: no lock needed
        with self._lock:
            for item, errors in checked:
                self._run_item(brand, batch, item, errors)
        self._schedule(self.batch_step_seconds, "end", brand_id, batch_id)

    def _end_batch(self, brand_id: str, batch_id: str) -> None:
        with self._lock:
            _, batch = self._scheduled(brand_id, batch_id)
            if batch is not None:
                batch["status"] = "stopped" if batch["_stop"] else "finished"
                batch["endedAt"] = _now_iso()

    def _item_errors(self, item: Any) -> list[dict]:
        """What is wrong with one batch item as a contact (schema and formats)."""
        if isinstance(item, dict):
            return self.contract.schema_errors("ContactRequest", item) + _contact_semantic_errors(item)
        return [_field_error("body", "invalid_type", "must be of type object")]

    def _run_item(self, brand: BrandState, batch: dict, item: Any, errors: list[dict]) -> None:
        try:
            if errors:
                raise validation_problem(errors)
            code, response = self._upsert(brand, item, update_only=batch["method"] == "PUT")
        except Problem as problem:
            code, response = problem.status, problem.body()
        result = {"itemID": _object_id(), "request": item, "responseCode": code, "response": response,
                  "status": "finished" if code < 400 else "failed"}
        batch["finishedCount"] += 1
        if code < 400:
            batch["_responses"].append(result)
        else:
            batch["errorsCount"] += 1
            batch["_errors"].append(result)

    def _get_batch(self, api_key: ApiKey, query, body, batchID: str) -> tuple[int, Any]:
        with self._lock:
            return 200, _batch_view(self._find_batch(api_key, batchID))

    def _get_batch_items(self, api_key: ApiKey, query, body, batchID: str) -> tuple[int, Any]:
        with self._lock:
            return 200, _batch_view(self._find_batch(api_key, batchID), with_items=True)

    def _find_batch(self, api_key: ApiKey, batch_id: str) -> dict:
        batch = self._brand(api_key.brand_id).batches.get(batch_id)
        if batch is None:
            raise Problem(404, "Not found", f"batch {batch_id} not found")
        return batch

    def _list_batches(self, api_key: ApiKey, query, body, **_) -> tuple[int, Any]:
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
        errors = []
        if offset < 0:
            errors.append(_field_error("offset", "out_of_range", "must be at least 0"))
        if not 1 <= limit <= 250:
            errors.append(_field_error("limit", "out_of_range", "must be between 1 and 250"))
        days = {}
        for name in ("dateFrom", "dateTo"):  # yyyy-mm-dd, compared with the day a batch was created (UTC)
            if name in query:
                try:
                    days[name] = dt.date.fromisoformat(query[name]).isoformat()
                except ValueError:
                    errors.append(_field_error(name, "invalid_format", "must be a date as yyyy-mm-dd"))
        if errors:
            raise validation_problem(errors)
        first, last = days.get("dateFrom", "0000-00-00"), days.get("dateTo", "9999-99-99")
        with self._lock:
            batches = [b for b in self._brand(api_key.brand_id).batches.values()
                       if b["endpoint"] == query["endpoint"] and query.get("status", b["status"]) == b["status"]
                       and first <= b["createdAt"][:10] <= last]
            batches.sort(key=lambda b: b["_seq"], reverse=True)  # newest first
            page = [_batch_view(b) for b in batches[offset: offset + limit]]
        paging: dict[str, Any] = {"limit": limit, "offset": offset}
        base = {k: v for k, v in query.items() if k not in ("offset", "limit")}
        if offset + limit < len(batches):
            paging["next"] = f"{self.url}/batches?" + urlencode({**base, "limit": limit, "offset": offset + limit})
        if offset > 0:
            paging["previous"] = f"{self.url}/batches?" + urlencode({**base, "limit": limit, "offset": max(0, offset - limit)})
        return 200, {"batches": page, "paging": paging}

    # -- brands ------------------------------------------------------------------------------

    def _get_brand(self, api_key: ApiKey, query, body, **_) -> tuple[int, Any]:
        return 200, {"brandID": api_key.brand_id, "name": f"Sandbox brand {api_key.brand_id}", "currency": "EUR",
                     "timezone": "UTC", "platform": "api", "website": "https://example.com", "connected": True,
                     "version": API_VERSION}


_SEQUENCE = iter(range(1, 2**62))  # creation / update order of contacts and batches (next() is atomic)

_ROUTES = {
    ("GET", "/contacts"): OmnisendSandbox._list_contacts,
    ("POST", "/contacts"): OmnisendSandbox._post_contact,
    ("GET", "/contacts/{id}"): OmnisendSandbox._get_contact,
    ("POST", "/contacts/tags"): OmnisendSandbox._add_tags,
    ("DELETE", "/contacts/tags"): OmnisendSandbox._remove_tags,
    ("GET", "/batches"): OmnisendSandbox._list_batches,
    ("POST", "/batches"): OmnisendSandbox._create_batch,
    ("GET", "/batches/{batchID}"): OmnisendSandbox._get_batch,
    ("GET", "/batches/{batchID}/items"): OmnisendSandbox._get_batch_items,
    ("GET", "/brands/current"): OmnisendSandbox._get_brand,
}


# -- contact helpers -----------------------------------------------------------------------------

CONTACT_FIELDS = ("firstName", "lastName", "address", "city", "state", "postalCode", "country", "gender", "birthdate")


def _new_contact() -> dict:
    now = _now_iso()
    return {"id": _object_id(), "identifiers": [], "tags": [], "customProperties": {}, "createdAt": now,
            "updatedAt": now, "_createdSeq": next(_SEQUENCE), "_updatedSeq": 0}


def _contact_semantic_errors(body: dict) -> list[dict]:
    """What the schema cannot say: formats, and that a contact needs an identifier."""
    errors = []
    identifiers = body.get("identifiers")
    if not identifiers:
        errors.append(_field_error("identifiers", "required", "at least one email or phone identifier is required"))
    if not isinstance(identifiers, list):
        identifiers = []  # a wrong type is reported by the schema check
    for i, ident in enumerate(identifiers):
        if not isinstance(ident, dict) or not isinstance(ident.get("id", ""), str):
            continue
        if ident.get("type") == "email" and not EMAIL_PATTERN.match(ident.get("id", "")):
            errors.append(_field_error(f"identifiers.{i}.id", "invalid_format", "Must be a valid email address"))
        if ident.get("type") == "phone" and not PHONE_PATTERN.match(ident.get("id", "")):
            errors.append(_field_error(f"identifiers.{i}.id", "invalid_format", "Must be a phone number in E.164 format"))
        channels = ident.get("channels") if isinstance(ident.get("channels"), dict) else {}
        for channel, wanted in channels.items():
            if isinstance(wanted, dict) and isinstance(wanted.get("statusChangedAt", ""), str) and "statusChangedAt" in wanted and _parse_time(wanted["statusChangedAt"]) is None:
                errors.append(_field_error(f"identifiers.{i}.channels.{channel}.statusChangedAt", "invalid_format",
                                           "Must be an RFC 3339 timestamp"))
    if isinstance(body.get("customProperties"), dict):
        errors += _custom_property_errors(body["customProperties"])
    if isinstance(body.get("birthdate"), str) and not _is_date(body["birthdate"]):
        errors.append(_field_error("birthdate", "invalid_format", "Must be a date in YYYY-MM-DD format"))
    if isinstance(body.get("countryCode"), str) and not re.fullmatch(r"[A-Za-z]{2}", body["countryCode"]):
        errors.append(_field_error("countryCode", "invalid_format", "Must be an ISO 3166-1 alpha-2 code"))
    if isinstance(body.get("createdAt"), str) and _parse_time(body["createdAt"]) is None:
        errors.append(_field_error("createdAt", "invalid_format", "Must be an RFC 3339 timestamp"))
    return errors


def _custom_property_errors(properties: dict) -> list[dict]:
    errors = []
    if len(properties) > MAX_CUSTOM_PROPERTIES:
        errors.append(_field_error("customProperties", "too_many_items",
                                   f"must have at most {MAX_CUSTOM_PROPERTIES} properties"))
    for name, value in properties.items():
        where = f"customProperties.{name}"
        if not CUSTOM_PROPERTY_NAME.fullmatch(name):
            errors.append(_field_error(where, "invalid_name", "Property names can contain only latin characters, "
                                                              "numbers and _ (underscore), at most 128"))
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            errors.append(_field_error(where, "invalid_type", "a list may hold strings only"))
        elif not isinstance(value, list) and not isinstance(value, (str, bool, int, float)):
            errors.append(_field_error(where, "invalid_type", "must be a string, number, boolean or list of strings; "
                                                              "objects are not supported"))
        elif any(isinstance(item, str) and len(item) > MAX_CUSTOM_STRING for item in items):
            errors.append(_field_error(where, "too_long", f"strings must be at most {MAX_CUSTOM_STRING} characters"))
    return errors


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _apply_fields(contact: dict, body: dict) -> None:
    for name in CONTACT_FIELDS:
        if name in body:
            contact[name] = body[name]
    if "countryCode" in body:
        contact["countryCode"] = body["countryCode"].upper()
    elif "country" in body and body["country"].strip().lower() in COUNTRY_CODES:
        contact["countryCode"] = COUNTRY_CODES[body["country"].strip().lower()]
    contact["customProperties"].update(body.get("customProperties") or {})
    if "createdAt" in body:
        contact["customProperties"]["externalCreated"] = body["createdAt"]
    if "tags" in body:  # writing tags replaces the contact's tags, as Omnisend does
        contact["tags"] = list(dict.fromkeys(body["tags"]))[:MAX_CONTACT_TAGS]
    contact["_updatedSeq"] = next(_SEQUENCE)


def _contact_view(contact: dict) -> dict:
    """The stored contact as a ContactResponse."""
    view = {key: _json_copy(value) for key, value in contact.items() if not key.startswith("_")}
    statuses = []
    for ident in contact["identifiers"]:
        for channel, state in ident["channels"].items():
            statuses.append({"channel": channel, **state})
            if channel == "email" and ident["id"] == contact.get("email"):
                view["status"] = state["status"]
    view["statuses"] = sorted(statuses, key=lambda s: s["statusChangedAt"], reverse=True)
    view.setdefault("segments", [])
    return view


def _contact_matches(contact: dict, query: dict[str, str]) -> bool:
    if "email" in query and contact.get("email") != query["email"]:
        return False
    if "phone" in query and query["phone"] not in contact.get("phone", []):
        return False
    if "tag" in query and query["tag"] not in contact.get("tags", []):
        return False
    if "status" in query and _contact_view(contact).get("status") != query["status"]:
        return False
    if "segmentID" in query:
        return False  # the sandbox has no segments
    if "updatedAtFrom" in query:
        since = _parse_time(query["updatedAtFrom"])
        return since is not None and _parse_time(contact["updatedAt"]) >= since
    return True


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars); much quicker than copy.deepcopy."""
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _SCALARS else _json_copy(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _SCALARS else _json_copy(item) for item in value]
    return value if kind in _SCALARS else copy.deepcopy(value)


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode().rstrip("=")


def _cursor_position(cursor: str, name: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text.removeprefix("pos:")) if text.startswith("pos:") else int("x")
    except ValueError:
        raise validation_problem([_field_error(name, "invalid_cursor", "not a cursor this API returned")]) from None


def _cursor_page(ordered: list[dict], sort_key: str, descending: bool, query: dict, limit: int):
    """One page of `ordered` after (or before) a cursor: (page, has_more_after, has_more_before)."""
    def beyond(contact: dict, position: int) -> bool:
        return contact[sort_key] < position if descending else contact[sort_key] > position

    if "after" in query:
        position = _cursor_position(query["after"], "after")
        rest = [c for c in ordered if beyond(c, position)]
        return rest[:limit], len(rest) > limit, len(rest) < len(ordered)
    if "before" in query:
        position = _cursor_position(query["before"], "before")
        earlier = [c for c in ordered if not beyond(c, position) and c[sort_key] != position]
        return earlier[-limit:], True, len(earlier) > limit
    return ordered[:limit], len(ordered) > limit, False


def _batch_view(batch: dict, *, with_items: bool = False) -> dict:
    view = {key: _json_copy(value) for key, value in batch.items() if not key.startswith("_")}
    if with_items:
        view["errors"] = _json_copy(batch["_errors"])
        view["responses"] = _json_copy(batch["_responses"])
    return view


# ---------------------------------------------------------------------------------------------
# HTTP.
# ---------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pooled session is exercised
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms ACK stalls
    server_version = "OmnisendSandbox/1"

    @property
    def sandbox(self) -> OmnisendSandbox:
        return self.server.sandbox  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:  # the request log is the record; stay quiet
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _dispatch(self) -> None:
        raw_body = self._read_body()
        if self.path.startswith("/_sandbox/"):
            status, body = _admin(self.sandbox, self.command, self.path, raw_body)
            return self._send(status, body)
        if not (self.path == "/api" or self.path.startswith(("/api/", "/api?"))):
            return self._send(404, Problem(404, "Not found", "the API lives under /api").body())
        try:
            status, body, delay = self.sandbox.handle_api(self.command, self.path, self.headers, raw_body)
        except _Dropped:
            # Reset the connection instead of answering (RST on close), like a dropped socket.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if delay and self.sandbox._stopping.wait(delay):
            self.close_connection = True
            return
        self._send(status, body)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _dispatch


def _admin(sandbox: OmnisendSandbox, method: str, path: str, raw_body: bytes) -> tuple[int, Any]:
    """The admin surface for other processes (never used by the client)."""
    split = urlsplit(path)
    try:
        payload = json.loads(raw_body) if raw_body else {}
    except json.JSONDecodeError:
        return 400, {"error": "body is not JSON"}
    if (method, split.path) == ("GET", "/_sandbox/state"):
        return 200, sandbox.state()
    if (method, split.path) == ("GET", "/_sandbox/log"):
        query = parse_qs(split.query)
        since = int(query.get("since", ["0"])[0])
        records = [asdict(record) for record in sandbox.request_log()[since:]]
        if query.get("brief", ["0"])[0] == "1":  # without bodies: what rate measurements need
            records = [{k: r[k] for k in ("time", "method", "path", "status", "brand_id", "kind", "template")}
                       for r in records]
        return 200, records
    if (method, split.path) == ("POST", "/_sandbox/faults"):
        try:
            sandbox.set_faults(**payload)
        except TypeError as exc:
            return 400, {"error": str(exc)}
        return 200, {"faults": {k: v for k, v in asdict(sandbox._faults).items() if k != "item_error_emails"}}
    if (method, split.path) == ("GET", "/_sandbox/tags"):
        query = {name: values[-1] for name, values in parse_qs(split.query).items()}
        brand_id = query.get("brandID", "brand1")
        if "email" in query:
            tags = sandbox.tags_of(query["email"], brand_id)
            return (404, {"error": "no contact with this email"}) if tags is None else (200, {query["email"]: tags})
        return 200, sandbox.all_tags(brand_id)
    if (method, split.path) == ("POST", "/_sandbox/hand-tags"):
        email, add, remove = payload.get("email"), payload.get("add", []), payload.get("remove", [])
        if not isinstance(email, str) or not email or not all(
                isinstance(v, list) and all(isinstance(t, str) and t for t in v) for v in (add, remove)):
            return 400, {"error": "expected {email, add: [tags], remove: [tags], brandID?}"}
        return 200, {"email": email, "tags": sandbox.tag_by_hand(email, add, remove, payload.get("brandID", "brand1"))}
    if (method, split.path) == ("POST", "/_sandbox/keys"):
        return 201, {"key": sandbox.add_key(payload.get("brandID", "brand1"), payload.get("scopes", ALL_SCOPES))}
    if (method, split.path) == ("POST", "/_sandbox/reset"):
        sandbox.reset()
        return 200, {"reset": True}
    return 404, {"error": f"unknown admin endpoint {method} {split.path}"}


# The standalone server moves what it holds out of the cyclic garbage collector's reach this often
# (gc.freeze). Its store (contacts, batches, the request log) only grows, and CPython runs a full
# collection each time the objects it tracks have grown by a quarter: in a 200,000-contact run those
# collections stalled the server for 0.2-1.05 s each, 25% further apart each time, so requests sent
# on time were counted up to a second late (a fault of the stand-in, not of Omnisend). What is frozen
# is still freed by reference counting; only cycles among it would stay (the store is plain data; a
# request in flight at that moment may leave a few).
FREEZE_SECONDS = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Omnisend sandbox (API version %s) on loopback." % API_VERSION)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key", help="the API key to accept, <brandID>-<secret> (generated when omitted)")
    parser.add_argument("--window-seconds", type=float, default=60.0, help="rate-limit window length")
    parser.add_argument("--requests-per-minute", type=int, default=400, help="general budget per window")
    parser.add_argument("--tag-requests-per-minute", type=int, default=60, help="tag-call budget per window")
    parser.add_argument("--batch-step-seconds", type=float, default=0.02)
    args = parser.parse_args(argv)
    sandbox = OmnisendSandbox(port=args.port, requests_per_minute=args.requests_per_minute,
                              tag_requests_per_minute=args.tag_requests_per_minute,
                              window_seconds=args.window_seconds, batch_step_seconds=args.batch_step_seconds)
    brand_id = args.key.split("-", 1)[0] if args.key else "brand1"
    key = sandbox.add_key(brand_id, key=args.key)
    sandbox.start()
    # A sandbox key is not a secret: printing it is how a developer points the app at the sandbox.
    print(f"Omnisend sandbox listening: OMNISEND_API_URL={sandbox.url}", flush=True)
    print(f"API key (brand {brand_id}): {key}", flush=True)
    print(f"state: http://127.0.0.1:{sandbox.port}/_sandbox/state   (Ctrl+C stops)", flush=True)
    try:
        while True:
            time.sleep(FREEZE_SECONDS)
            gc.freeze()  # see FREEZE_SECONDS
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
