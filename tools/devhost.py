"""A small local host for the function app, for machines without Azure Functions Core Tools.

It runs a Python v2-programming-model app (default `function_app`) from the app's own binding
metadata (`app.get_functions()`), the way `func start` does:

- `local.settings.json` `Values` go into the environment before the app is imported; variables
  already set in the environment win.
- HTTP-triggered functions are served on `--port` under host.json's `routePrefix` (default `api`).
  Like `func start`, authLevel FUNCTION is not enforced, unless `--function-key KEY` is given: then
  FUNCTION and ADMIN routes answer 401 without that key in `x-functions-key` or `?code=`, as in
  Azure. A client's `X-MS-CLIENT-PRINCIPAL` passes
  through unchanged; a request without one gets a local principal built like Easy Auth's
  (`--principal-roles`, default `Exports.Admin`; `--no-principal` turns that off).
- Queue-triggered functions are fed by one polling thread per function against the binding's
  storage connection (default `AzureWebJobsStorage`), with host.json's `extensions.queues` settings:
  a failed invocation makes the message visible again after `visibilityTimeout`; a message that
  has failed `maxDequeueCount` times moves to `<queue>-poison`. `--workers N` caps how many queue
  invocations run at once (N > 1 simulates scale-out).
- Timer and other non-HTTP functions run through `POST /admin/functions/{name}` (`{"input": ...}`,
  202), as with the real host's admin API. Timers do not fire on their schedule (except
  `runOnStartup`): invoke them explicitly.
- Blob-triggered functions with `source=EventGrid` run through
  `POST /runtime/webhooks/blobs?functionName=Host.Functions.{name}` with Event Grid
  `Microsoft.Storage.BlobCreated` events (the subscription validation handshake is answered). A
  trigger parameter typed `func.InputStream` gets the blob's bytes; one typed with an SDK type of
  `azurefunctions-extensions-bindings-blob` (`BlobClient`, `ContainerClient`,
  `StorageStreamDownloader`) gets that client, built by the extension from the same reference the
  real host sends, and nothing is downloaded.

Usage: `python -m tools.devhost --port 7071 [--app function_app] [--workers 4]`, or in-process:
`DevHost(app_module="function_app", port=0).start()` ... `.url` ... `.stop()`.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import typing
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, MutableMapping
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions import _abc as func_abc
from azure.functions.blob import InputStream
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

log = logging.getLogger("devhost")

DEFAULT_PORT = 7071
DEFAULT_ROLES = ("Exports.Admin",)
PRINCIPAL_HEADER = "x-ms-client-principal"
# The real host leases a message for 10 minutes while the function runs.
DEFAULT_MESSAGE_LEASE_SECONDS = 600
MIN_POLLING_INTERVAL = 0.1
SUPPORTED_OUTPUT_BINDINGS = ("http", "queue", "blob")


class DevHostError(Exception):
    """The app, its settings or its bindings cannot be hosted; the message says what and where."""


# --- host.json and local.settings.json ------------------------------------------------------------

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2}):(?P<seconds>\d{1,2}(?:\.\d+)?)$")


def parse_timespan(text: str, where: str) -> float:
    """Seconds in a .NET TimeSpan string as host.json writes them: `hh:mm:ss[.fff]` or `d.hh:mm:ss`."""
    match = _TIMESPAN.match(str(text).strip())
    if not match:
        raise DevHostError(f"{where}: {text!r} is not a time span like '00:00:30'")
    days = int(match["days"] or 0)
    return ((days * 24 + int(match["hours"])) * 60 + int(match["minutes"])) * 60 + float(match["seconds"])


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the Functions defaults."""

    batch_size: int = 16
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    max_polling_interval: float = 60.0


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)

    @classmethod
    def load(cls, path: Path) -> "HostConfig":
        if not path.exists():
            return cls()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DevHostError(f"{path}: cannot read host.json: {error}") from None
        extensions = document.get("extensions") or {}
        prefix = (extensions.get("http") or {}).get("routePrefix", "api")
        return cls(route_prefix=str(prefix).strip("/"), queues=_queue_options(extensions.get("queues") or {}, path))


def _queue_options(section: Mapping[str, Any], path: Path) -> QueueOptions:
    where = f"{path}: extensions.queues"
    defaults = QueueOptions()

    def whole(name: str, default: int, low: int) -> int:
        value = section.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise DevHostError(f"{where}.{name} must be a whole number >= {low}, got {value!r}")
        return value

    def span(name: str, default: float) -> float:
        return parse_timespan(section[name], f"{where}.{name}") if name in section else default

    return QueueOptions(
        batch_size=min(whole("batchSize", defaults.batch_size, 1), 32),
        visibility_timeout=span("visibilityTimeout", defaults.visibility_timeout),
        max_dequeue_count=whole("maxDequeueCount", defaults.max_dequeue_count, 1),
        max_polling_interval=max(span("maxPollingInterval", defaults.max_polling_interval), MIN_POLLING_INTERVAL),
    )


def load_local_settings(path: Path, environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Put `Values` of local.settings.json into `environ` unless already set; the names it set."""
    if not path.exists():
        log.info("no %s: using the environment only", path.name)
        return []
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DevHostError(f"{path}: cannot read local settings: {error}") from None
    if document.get("IsEncrypted"):
        raise DevHostError(f"{path}: encrypted settings are not supported; set IsEncrypted to false")
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise DevHostError(f"{path}: 'Values' must be an object of setting names to strings")
    applied = []
    for name, value in values.items():
        if isinstance(value, (dict, list)) or value is None:
            raise DevHostError(f"{path}: Values.{name} must be a string, got {type(value).__name__}")
        if name in environ:
            continue  # the environment wins, as with `func start`
        environ[name] = value if isinstance(value, str) else json.dumps(value)
        applied.append(name)
    return applied


_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")


def resolve_settings(value: Any, where: str, environ: Mapping[str, str] = os.environ) -> Any:
    """`%NAME%` in a binding property replaced by the app setting NAME, as the host does."""
    if not isinstance(value, str):
        return value

    def setting(match: re.Match) -> str:
        name = match[1]
        if name not in environ:
            raise DevHostError(f"{where} refers to %{name}%, but app setting {name} is not set")
        return environ[name]

    return _SETTING_EXPRESSION.sub(setting, value)


# --- the app's functions ------------------------------------------------------------------------


@dataclass
class HostedFunction:
    """One function of the app, with its trigger binding resolved against the app settings."""

    name: str
    handler: Callable[..., Any]
    trigger_type: str
    trigger_arg: str
    trigger: dict[str, Any]
    outputs: list[dict[str, Any]]
    wants_context: bool
    sdk_type: type | None = None  # the trigger parameter's SDK type (azurefunctions-extensions), if any

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


def import_app(app_module: str) -> func.FunctionRegister:
    """The FunctionApp of a module (dotted name on sys.path) or of a .py file."""
    if app_module.endswith(".py"):
        path = Path(app_module).resolve()
        if not path.exists():
            raise DevHostError(f"app file {app_module} does not exist")
        module = sys.modules.get(path.stem)
        if module is None:
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        elif Path(getattr(module, "__file__", "") or "").resolve() != path:
            raise DevHostError(f"cannot load {path}: another module named {path.stem} is already imported")
    else:
        module = importlib.import_module(app_module)
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise DevHostError(f"{app_module} must define exactly one FunctionApp at module level, found {len(apps)}")
    return apps[0]


# get_functions() builds the functions and cannot be called twice on one app: keep what it built.
_built_functions: dict[int, tuple[func.FunctionRegister, list[Any]]] = {}


def discover_functions(app: func.FunctionRegister, environ: Mapping[str, str] = os.environ) -> list[HostedFunction]:
    """The app's functions with their trigger bindings resolved against the app settings."""
    if id(app) not in _built_functions:
        try:
            _built_functions[id(app)] = (app, app.get_functions())
        except ValueError as error:  # the library's own validation, e.g. duplicate function names
            raise DevHostError(f"the app's functions are not valid: {error}") from None
    return [_describe(function, environ) for function in _built_functions[id(app)][1]]


def _describe(function: Any, environ: Mapping[str, str]) -> HostedFunction:
    name = function.get_function_name()
    bindings = json.loads(function.get_function_json())["bindings"]
    triggers = [b for b in bindings if b["type"].endswith("Trigger")]
    if len(triggers) != 1:
        raise DevHostError(f"function {name}: expected one trigger binding, found {len(triggers)}")
    trigger = {
        key: resolve_settings(value, f"function {name}: binding {triggers[0]['name']}.{key}", environ)
        for key, value in triggers[0].items()
    }
    outputs = []
    for binding in bindings:
        if binding is triggers[0]:
            continue
        if binding.get("direction", "").upper() != "OUT" or binding["type"] not in SUPPORTED_OUTPUT_BINDINGS:
            raise DevHostError(
                f"function {name}: {binding.get('direction', '').lower()} binding {binding['name']!r} of type "
                f"{binding['type']!r} is not supported by the dev host (supported outputs: "
                f"{', '.join(SUPPORTED_OUTPUT_BINDINGS)})"
            )
        output = {k: resolve_settings(v, f"function {name}: binding {binding['name']}.{k}", environ)
                  for k, v in binding.items()}
        if "{" in str(output.get("path", "")):
            raise DevHostError(f"function {name}: binding {binding['name']}: path expressions like "
                               f"{output['path']!r} are not supported by the dev host")
        outputs.append(output)
    handler = function.get_user_function()
    parameters = set(inspect.signature(handler).parameters)
    bound = {trigger["name"], "context"} | {o["name"] for o in outputs}
    if unbound := sorted(parameters - bound):
        raise DevHostError(f"function {name}: parameters {unbound} have no binding")
    return HostedFunction(
        name=name,
        handler=handler,
        trigger_type=trigger["type"],
        trigger_arg=trigger["name"],
        trigger=trigger,
        outputs=outputs,
        wants_context="context" in parameters,
        sdk_type=_sdk_type(handler, trigger["name"]),
    )


def _sdk_type(handler: Callable[..., Any], parameter: str) -> type | None:
    """The parameter's annotation when it is an SDK type of an azurefunctions-extensions package."""
    try:
        annotation = typing.get_type_hints(handler).get(parameter)
    except Exception:  # noqa: BLE001 - unresolvable annotations are not SDK types
        return None
    if not isinstance(annotation, type):
        return None
    try:
        from azurefunctions.extensions.base import SdkType
    except ImportError:  # the extensions are not installed, so the app cannot use their types
        return None
    return annotation if issubclass(annotation, SdkType) else None


# --- HTTP routes ----------------------------------------------------------------------------------

_ROUTE_PARAMETER = re.compile(r"\{(?P<star>\*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<constraint>[^}?=]+))?(?P<optional>\?)?\}")
_CONSTRAINTS = {"int": r"-?\d+", "long": r"-?\d+", "alpha": r"[A-Za-z]+", "bool": r"(?i:true|false)",
                "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}"}


@dataclass
class Route:
    """An HTTP function's route template, e.g. `exports/{id}/runs` or `files/{*path}`."""

    template: str
    function: HostedFunction
    methods: frozenset[str] | None  # None: every method
    pattern: re.Pattern = field(init=False)
    precedence: tuple = field(init=False)

    def __post_init__(self) -> None:
        self.pattern, self.precedence = _compile_route(self.template, self.function.name)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if not found:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items() if value is not None}


def _compile_route(template: str, function_name: str) -> tuple[re.Pattern, tuple]:
    segments = [s for s in template.strip("/").split("/") if s] if template.strip("/") else []
    regex, ranks = "", []
    for index, segment in enumerate(segments):
        parameter = _ROUTE_PARAMETER.fullmatch(segment)
        if parameter and parameter["star"]:
            if index != len(segments) - 1:
                raise DevHostError(f"function {function_name}: catch-all {segment} must be the last route segment")
            regex += f"(?:/(?P<{parameter['name']}>.*))?" if regex else f"(?P<{parameter['name']}>.*)"
            ranks.append(4)
        elif parameter and parameter["optional"]:
            group = f"(?P<{parameter['name']}>{_CONSTRAINTS.get(parameter['constraint'] or '', '[^/]+')})"
            regex += f"(?:/{group})?" if regex else f"{group}?"
            ranks.append(3)
        else:
            regex += ("/" if index else "") + _segment_regex(segment, function_name)
            ranks.append(0 if "{" not in segment else (2 if parameter else 1))
    try:
        return re.compile(regex, re.IGNORECASE), tuple(ranks)
    except re.error as error:
        raise DevHostError(f"function {function_name}: route {template!r} is not valid: {error}") from None


def _segment_regex(segment: str, function_name: str) -> str:
    parts, position = [], 0
    for parameter in _ROUTE_PARAMETER.finditer(segment):
        if parameter["star"] or parameter["optional"]:
            raise DevHostError(f"function {function_name}: {parameter[0]} must be a whole, last route segment")
        parts.append(re.escape(segment[position:parameter.start()]))
        parts.append(f"(?P<{parameter['name']}>{_CONSTRAINTS.get(parameter['constraint'] or '', '[^/]+?')})")
        position = parameter.end()
    parts.append(re.escape(segment[position:]))
    return "".join(parts)


def _routes(functions: Iterable[HostedFunction]) -> list[Route]:
    routes = []
    for function in functions:
        if function.trigger_type != "httpTrigger":
            continue
        methods = function.trigger.get("methods")
        routes.append(
            Route(
                template=function.trigger.get("route") or function.name,
                function=function,
                methods=frozenset(m.upper() for m in methods) if methods else None,
            )
        )
    # Literal segments win over parameters, parameters over catch-alls (ASP.NET route precedence).
    return sorted(routes, key=lambda route: route.precedence)


# --- Easy Auth principal ------------------------------------------------------------------------


def local_principal(roles: Iterable[str], name: str = "local.developer@localhost") -> dict[str, str]:
    """Headers Easy Auth would add for a signed-in user with these app roles."""
    object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"devhost:{name}"))
    claims = [
        {"typ": "preferred_username", "val": name},
        {"typ": "name", "val": name},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id},
        *({"typ": "roles", "val": role} for role in roles),
    ]
    principal = {"auth_typ": "aad", "claims": claims, "name_typ": "preferred_username", "role_typ": "roles"}
    return {
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
        "X-MS-CLIENT-PRINCIPAL-NAME": name,
        "X-MS-CLIENT-PRINCIPAL-ID": object_id,
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
    }


# --- invocation context and output bindings ----------------------------------------------------


class _TraceContext(func_abc.TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self._retry_count, self._max_retry_count = retry_count, max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> None:
        return None


class InvocationContext(func_abc.Context):
    """The `context` argument of a function: invocation id, function name and directory."""

    def __init__(self, function: HostedFunction, app_dir: Path, retry_count: int = 0, max_retry_count: int = 0) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function.name
        self._function_directory = str(app_dir)
        self._thread_local_storage = threading.local()
        self._retry_context = _RetryContext(retry_count, max_retry_count)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def thread_local_storage(self) -> threading.local:
        return self._thread_local_storage

    @property
    def trace_context(self) -> _TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> _RetryContext:
        return self._retry_context


class _Out(func.Out):
    def __init__(self) -> None:
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value


# --- the host -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelBindingData:
    """What the host sends for an SDK-type binding: a reference to the resource, not its content."""

    content: str
    version: str = "1.0"
    source: str = "AzureStorageBlobs"
    content_type: str = "application/json"


@dataclass(frozen=True)
class InvocationOutcome:
    succeeded: bool
    result: Any = None
    error: BaseException | None = None


class DevHost:
    """Host a v2-model function app locally: HTTP server, queue listeners, admin and blob webhooks."""

    def __init__(
        self,
        app_module: str = "function_app",
        port: int = DEFAULT_PORT,
        workers: int = 1,
        principal_roles: Iterable[str] | None = DEFAULT_ROLES,
        *,
        principal_name: str = "local.developer@localhost",
        function_key: str | None = None,
        app_dir: str | os.PathLike | None = None,
        host: str = "127.0.0.1",
        message_lease_seconds: float = DEFAULT_MESSAGE_LEASE_SECONDS,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.app_module = app_module
        self.app_dir = Path(app_dir or os.getcwd()).resolve()
        self.workers = workers
        # None disables the injected principal (--no-principal); () injects one without roles.
        self.principal_headers = None if principal_roles is None else local_principal(principal_roles, principal_name)
        # None: keys are not checked (as with `func start`); a key: FUNCTION/ADMIN routes need it, as in Azure.
        self.function_key = function_key
        self.message_lease_seconds = message_lease_seconds
        self._bind = (host, port)
        self.config = HostConfig()
        self.functions: dict[str, HostedFunction] = {}
        self.routes: list[Route] = []
        self._applied_settings: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._queue_pool: ThreadPoolExecutor | None = None
        self._slots = threading.Semaphore(workers)
        self._background = ThreadPoolExecutor(max_workers=8, thread_name_prefix="devhost-invoke")
        self._in_flight = 0
        self._output_queues: set[str] = set()
        self._idle = threading.Condition()

    # --- life cycle ---

    def start(self) -> "DevHost":
        self._applied_settings = load_local_settings(self.app_dir / "local.settings.json")
        try:
            self.config = HostConfig.load(self.app_dir / "host.json")
            if str(self.app_dir) not in sys.path:
                sys.path.insert(0, str(self.app_dir))
            app = import_app(self.app_module)
            self.functions = {f.name: f for f in discover_functions(app)}
            self.routes = _routes(self.functions.values())
            self._start_http()
            self._start_queue_listeners()
        except BaseException:
            self.stop()
            raise
        self._announce()
        self._run_on_startup()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(10)
        if self._queue_pool:
            self._queue_pool.shutdown(wait=True)
        self._background.shutdown(wait=True)
        for name in self._applied_settings:  # leave the process environment as we found it
            os.environ.pop(name, None)
        self._applied_settings = []

    def __enter__(self) -> "DevHost":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if not self._server:
            raise DevHostError("the dev host is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def serves_root(self) -> bool:
        """Whether an HTTP function answers GET / (a web page at the root, routePrefix "")."""
        return not self.config.route_prefix and any(
            route.match("") is not None and (route.methods is None or "GET" in route.methods) for route in self.routes)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no invocation (of any trigger) is running; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # --- invoking ---

    def invoke_timer(self, name: str, past_due: bool = False) -> Any:
        """Run a timer function now, synchronously; its exception propagates."""
        function = self._function(name, "timerTrigger")
        outcome = self._invoke(function, TimerRequest(past_due=past_due), trigger="timer")
        if outcome.error:
            raise outcome.error
        return outcome.result

    def invoke(self, name: str, input: str = "") -> Any:
        """Run a non-HTTP function now, synchronously, as the admin API would; its exception propagates."""
        function = self._function(name)
        outcome = self._invoke(function, self._admin_input(function, input), trigger="admin")
        if outcome.error:
            raise outcome.error
        return outcome.result

    def _function(self, name: str, trigger_type: str | None = None) -> HostedFunction:
        function = self.functions.get(name)
        if function is None:
            raise DevHostError(f"no function named {name!r}; the app has {sorted(self.functions)}")
        if trigger_type and function.trigger_type != trigger_type:
            raise DevHostError(f"function {name} has a {function.trigger_type}, not a {trigger_type}")
        return function

    def _admin_input(self, function: HostedFunction, input: str) -> Any:
        if function.trigger_type == "timerTrigger":
            return TimerRequest(past_due=False)
        if function.trigger_type == "queueTrigger":
            now = datetime.now(timezone.utc)
            return QueueMessage(id=str(uuid.uuid4()), body=input.encode(), dequeue_count=1,
                                     insertion_time=now, time_next_visible=now)
        if function.trigger_type == "blobTrigger":
            container, _, blob = input.partition("/")
            if not container or not blob:
                raise DevHostError(f"function {function.name}: input must be a blob path '<container>/<blob>', got {input!r}")
            return self._blob_trigger_value(function, container, blob)
        raise DevHostError(f"function {function.name} has a {function.trigger_type}: call its route instead")

    def _invoke(self, function: HostedFunction, trigger_value: Any, *, trigger: str,
                retry_count: int = 0, max_retry_count: int = 0) -> InvocationOutcome:
        context = InvocationContext(function, self.app_dir, retry_count, max_retry_count)
        outputs = {o["name"]: _Out() for o in function.outputs if o["name"] != "$return"}
        arguments = {function.trigger_arg: trigger_value, **outputs}
        if function.wants_context:
            arguments["context"] = context
        with self._idle:
            self._in_flight += 1
        started = time.perf_counter()
        try:
            result = function.handler(**arguments)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
            self._write_outputs(function, outputs, result)
            outcome = InvocationOutcome(True, result)
        except Exception as error:  # an app failure is the function's outcome, not the host's
            outcome = InvocationOutcome(False, error=error)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
        duration_ms = (time.perf_counter() - started) * 1000
        if outcome.succeeded:
            log.info("Executed 'Functions.%s' (Succeeded, trigger=%s, Id=%s, Duration=%.0fms)",
                     function.name, trigger, context.invocation_id, duration_ms)
        else:
            log.error("Executed 'Functions.%s' (Failed, trigger=%s, Id=%s, Duration=%.0fms)",
                      function.name, trigger, context.invocation_id, duration_ms, exc_info=outcome.error)
        return outcome

    def _in_background(self, work: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run work on the host's background threads, counted by wait_idle from now on."""
        with self._idle:
            self._in_flight += 1

        def tracked() -> None:
            try:
                work(*args, **kwargs)
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

        self._background.submit(tracked)

    # --- output bindings ---

    def _write_outputs(self, function: HostedFunction, outputs: dict[str, _Out], result: Any) -> None:
        for binding in function.outputs:
            if binding["type"] == "http":
                continue
            value = result if binding["name"] == "$return" else outputs[binding["name"]].value
            if value is None:
                continue
            if binding["type"] == "queue":
                queue = self._queue_client(binding.get("connection"), binding["queueName"], encoded=True)
                if binding["queueName"] not in self._output_queues:
                    _create_if_missing(queue.create_queue)
                    self._output_queues.add(binding["queueName"])
                for message in value if isinstance(value, list) else [value]:
                    queue.send_message(_as_bytes(message))
            elif binding["type"] == "blob":
                container, _, blob = binding["path"].partition("/")
                client = self._storage(binding.get("connection")).get_blob_client(container, blob)
                client.upload_blob(_as_bytes(value), overwrite=True)

    # --- storage ---

    def _settings_for(self, connection: str | None):
        """App settings of a storage connection (`X` or `X__accountName`...), read by shared.settings."""
        from shared.settings import Settings

        prefix = connection or "AzureWebJobsStorage"
        environ = {
            "AzureWebJobsStorage" + suffix: os.environ[prefix + suffix]
            for suffix in ("", "__accountName", "__blobServiceUri", "__queueServiceUri", "__clientId")
            if os.environ.get(prefix + suffix)
        }
        if not environ:
            raise DevHostError(f"storage connection {prefix!r} is not set (app setting {prefix} or {prefix}__accountName)")
        return Settings.from_env(environ)

    def _storage(self, connection: str | None):
        from shared.storage import blob_service

        return blob_service(self._settings_for(connection).storage)

    def _queue_client(self, connection: str | None, name: str, *, encoded: bool):
        """A queue client; `encoded=False` sees message text as stored (base64), for the listener."""
        from shared.storage import queue

        return queue(self._settings_for(connection), name, base64=encoded)

    def _blob_trigger_value(self, function: HostedFunction, container: str, blob: str) -> Any:
        """What the blob trigger hands the function: an SDK client (reference only) or the blob's bytes."""
        if function.sdk_type is not None:
            return self._blob_sdk_value(function, container, blob)
        return self._read_blob(function, container, blob)

    def _blob_sdk_value(self, function: HostedFunction, container: str, blob: str) -> Any:
        """The SDK client the extension builds from the host's model binding data: like the real host,
        only the blob's properties are read (it must exist), never its content."""
        from azure.core.exceptions import ResourceNotFoundError
        from azurefunctions.extensions.base import Datum, get_binding_registry

        connection = function.trigger.get("connection") or "AzureWebJobsStorage"
        try:
            self._storage(connection).get_blob_client(container, blob).get_blob_properties()
        except ResourceNotFoundError:
            raise DevHostError(f"function {function.name}: blob {container}/{blob} does not exist") from None
        converter = get_binding_registry().get(function.trigger_type)
        if converter is None:
            raise DevHostError(f"function {function.name}: no installed extension converts a {function.trigger_type} "
                               f"to {function.sdk_type.__name__}")
        reference = ModelBindingData(content=json.dumps({"Connection": connection, "ContainerName": container,
                                                         "BlobName": blob}))
        return converter.decode(Datum(reference, "model_binding_data"), trigger_metadata={}, pytype=function.sdk_type)

    def _read_blob(self, function: HostedFunction, container: str, blob: str) -> InputStream:
        from azure.core.exceptions import ResourceNotFoundError

        client = self._storage(function.trigger.get("connection")).get_blob_client(container, blob)
        try:
            downloader = client.download_blob()
            data = downloader.readall()
        except ResourceNotFoundError:
            raise DevHostError(f"function {function.name}: blob {container}/{blob} does not exist") from None
        properties = downloader.properties
        return InputStream(
            data=data,
            name=f"{container}/{blob}",
            uri=client.url,
            length=len(data),
            blob_properties={
                "ContentType": properties.content_settings.content_type,
                "ETag": properties.etag,
                "LastModified": properties.last_modified.isoformat() if properties.last_modified else None,
                "Length": properties.size,
            },
            metadata=dict(properties.metadata or {}),
        )

    # --- queue listeners ---

    def _start_queue_listeners(self) -> None:
        listeners = [f for f in self.functions.values() if f.trigger_type == "queueTrigger"]
        if not listeners:
            return
        self._queue_pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="devhost-queue")
        for function in listeners:
            listener = QueueListener(self, function)
            listener.prepare()
            thread = threading.Thread(target=listener.run, name=f"devhost-queue-{function.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    # --- timers ---

    def _run_on_startup(self) -> None:
        for function in self.functions.values():
            if function.trigger_type == "timerTrigger" and function.trigger.get("runOnStartup"):
                self._in_background(self._invoke, function, TimerRequest(past_due=False), trigger="timer (runOnStartup)")

    # --- HTTP ---

    def _start_http(self) -> None:
        self._server = ThreadingHTTPServer(self._bind, _handler_class(self))
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="devhost-http", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _announce(self) -> None:
        lines = [f"Dev host for {self.app_module} on {self.url} ({self.workers} queue worker(s))", "Functions:"]
        for function in self.functions.values():
            if function.trigger_type == "httpTrigger":
                route = next(r for r in self.routes if r.function is function)
                methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
                prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
                lines.append(f"    {function.name}: [{methods}] {self.url}{prefix}/{route.template.strip('/')}")
            else:
                lines.append(f"    {function.name}: {function.trigger_type} {self._how_to_run(function)}")
        log.info("\n".join(lines))

    def _how_to_run(self, function: HostedFunction) -> str:
        admin = f"POST {self.url}/admin/functions/{function.name}"
        if function.trigger_type == "queueTrigger":
            return f"{function.trigger['queueName']} (polled)"
        if function.trigger_type == "blobTrigger":
            webhook = f"POST {self.url}/runtime/webhooks/blobs?functionName=Host.Functions.{function.name}"
            return f"{function.trigger.get('path')} (Event Grid events: {webhook})"
        if function.trigger_type == "timerTrigger":
            return f"{function.trigger.get('schedule')} (not on schedule here: {admin})"
        return f"({admin})"

    def http_answer(self, method: str, target: str, headers: dict[str, str], body: bytes, base_url: str) -> "HttpAnswer":
        """What the host answers to one HTTP request (the server's handler calls this)."""
        path = urlsplit(target).path
        if path.startswith("/admin/functions/"):
            return self._admin_answer(method, unquote(path[len("/admin/functions/"):]), body)
        if path == "/admin/host/status":
            return HttpAnswer.json(200, {"state": "Running", "functions": sorted(self.functions)})
        if path.rstrip("/") == "/runtime/webhooks/blobs":
            return self._blob_event_answer(method, target, headers, body)
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        if prefix and not (path == prefix or path.startswith(prefix + "/")):
            return HttpAnswer.json(404, {"error": f"no function serves {path}"})
        return self._route_answer(method, path[len(prefix):].strip("/"), target, headers, body, base_url)

    def _route_answer(self, method: str, relative: str, target: str, headers: dict[str, str], body: bytes,
                      base_url: str) -> "HttpAnswer":
        matched = [(route, params) for route in self.routes if (params := route.match(relative)) is not None]
        if not matched:
            return HttpAnswer.json(404, {"error": f"no function route matches /{relative}"})
        allowed = [(route, params) for route, params in matched if route.methods is None or method in route.methods]
        if not allowed:
            methods = sorted(set().union(*(route.methods for route, _ in matched)))
            return HttpAnswer(405, {"Allow": ", ".join(methods)}, b"")
        route, route_params = allowed[0]
        if self.function_key and not self._key_accepted(route.function, target, headers):
            return HttpAnswer(401, {}, b"")  # the Functions host's answer: no body, the function never runs
        if PRINCIPAL_HEADER not in {name.lower() for name in headers} and self.principal_headers:
            headers = {**headers, **self.principal_headers}
        request = func.HttpRequest(
            method=method,
            url=base_url + target,
            headers=headers,
            params=_query_params(urlsplit(target).query),
            route_params=route_params,
            body=body,
        )
        outcome = self._invoke(route.function, request, trigger="http")
        if not outcome.succeeded:
            return HttpAnswer(500, {}, b"")
        return HttpAnswer.from_result(outcome.result, route.function.name)

    def _key_accepted(self, function: HostedFunction, target: str, headers: dict[str, str]) -> bool:
        if str(function.trigger.get("authLevel", "FUNCTION")).upper() == "ANONYMOUS":
            return True
        given = next((value for name, value in headers.items() if name.lower() == "x-functions-key"), None)
        given = given or _query_params(urlsplit(target).query).get("code")
        return given == self.function_key

    def _admin_answer(self, method: str, name: str, body: bytes) -> "HttpAnswer":
        if method != "POST":
            return HttpAnswer(405, {"Allow": "POST"}, b"")
        if name not in self.functions:
            return HttpAnswer.json(404, {"error": f"no function named {name!r}"})
        try:
            document = json.loads(body or b"{}")
            text = document.get("input", "") if isinstance(document, dict) else None
            if not isinstance(text, str):
                raise ValueError
        except ValueError:
            return HttpAnswer.json(400, {"error": 'the body must be a JSON object like {"input": "..."}'})
        function = self.functions[name]
        try:
            value = self._admin_input(function, text)
        except DevHostError as error:
            return HttpAnswer.json(400, {"error": str(error)})
        self._in_background(self._invoke, function, value, trigger="admin")
        return HttpAnswer(202, {}, b"")

    def _blob_event_answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> "HttpAnswer":
        if method != "POST":
            return HttpAnswer(405, {"Allow": "POST"}, b"")
        name = dict(parse_qsl(urlsplit(target).query)).get("functionName", "")
        name = name[len("Host.Functions."):] if name.startswith("Host.Functions.") else name
        function = self.functions.get(name)
        if function is None or function.trigger_type != "blobTrigger":
            return HttpAnswer.json(404, {"error": f"functionName must name a blob-triggered function, got {name!r}"})
        try:
            events = json.loads(body)
        except ValueError:
            return HttpAnswer.json(400, {"error": "the body must be an Event Grid event or an array of them"})
        events = events if isinstance(events, list) else [events]
        if not all(isinstance(event, dict) for event in events):
            return HttpAnswer.json(400, {"error": "every Event Grid event must be a JSON object"})
        for event in events:
            if _event_type(event) == "Microsoft.EventGrid.SubscriptionValidationEvent":
                code = (event.get("data") or {}).get("validationCode")
                return HttpAnswer.json(200, {"validationResponse": code})
        to_run = []
        for event in events:
            blob = _created_blob(event)
            if blob is None:
                log.info("blob webhook for %s: ignored event %s of type %s", name, event.get("id"), _event_type(event))
            elif not _blob_path_matches(function.trigger.get("path", ""), *blob):
                log.info("blob webhook for %s: ignored %s/%s (outside path %s)", name, *blob, function.trigger.get("path"))
            else:
                to_run.append(blob)
        for container, blob in to_run:
            self._in_background(self._blob_invocation, function, container, blob)
        return HttpAnswer(202, {}, b"")

    def _blob_invocation(self, function: HostedFunction, container: str, blob: str) -> None:
        try:
            value = self._blob_trigger_value(function, container, blob)
        except Exception as error:  # noqa: BLE001 - reported, not swallowed
            log.error("Function %s not run for blob %s/%s: %s", function.name, container, blob, error)
            return
        self._invoke(function, value, trigger="blob (Event Grid)")


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, func_abc.QueueMessage):
        body = value.get_body()
        return body if isinstance(body, bytes) else body.encode("utf-8")
    return json.dumps(value).encode("utf-8")


def _create_if_missing(create: Callable[[], Any]) -> None:
    from azure.core.exceptions import ResourceExistsError

    try:
        create()
    except ResourceExistsError:
        pass


def _query_params(query: str) -> dict[str, str]:
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return {name: ",".join(values) for name, values in params.items()}


def _event_type(event: Mapping[str, Any]) -> str:
    return str(event.get("eventType") or event.get("type") or "")  # Event Grid schema or CloudEvents


_SUBJECT = re.compile(r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<blob>.+)$")


def _created_blob(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(container, blob path) of a BlobCreated event, from its subject (or data.url)."""
    if _event_type(event) != "Microsoft.Storage.BlobCreated":
        return None
    subject = _SUBJECT.match(str(event.get("subject") or ""))
    if subject:
        return subject["container"], subject["blob"]
    url = str((event.get("data") or {}).get("url") or "")
    parts = unquote(urlsplit(url).path).lstrip("/").split("/")
    if urlsplit(url).hostname in ("127.0.0.1", "localhost"):  # Azurite: path-style /<account>/<container>/...
        parts = parts[1:]
    if len(parts) < 2:
        log.error("BlobCreated event %s names no blob (subject %r, url %r)", event.get("id"), event.get("subject"), url)
        return None
    return parts[0], "/".join(parts[1:])


def _blob_path_matches(pattern: str, container: str, blob: str) -> bool:
    """Whether a blob trigger path like `segments/{name}` covers container/blob."""
    regex = "".join(
        "(?:.+)" if piece.startswith("{") else re.escape(piece) for piece in re.split(r"(\{[^}]*\})", pattern) if piece
    )
    return re.fullmatch(regex, f"{container}/{blob}") is not None


# --- queue listener -------------------------------------------------------------------------------


class QueueListener:
    """Polls one queue for one function, the way the Functions queue trigger does."""

    def __init__(self, host: DevHost, function: HostedFunction) -> None:
        self.host = host
        self.function = function
        self.options = host.config.queues
        self.queue_name = function.trigger["queueName"]
        self.poison_name = f"{self.queue_name}-poison"
        connection = function.trigger.get("connection")
        self.queue = host._queue_client(connection, self.queue_name, encoded=False)
        self.poison = host._queue_client(connection, self.poison_name, encoded=False)

    def prepare(self) -> None:
        _create_if_missing(self.queue.create_queue)
        _create_if_missing(self.poison.create_queue)

    def run(self) -> None:
        interval = MIN_POLLING_INTERVAL
        stopping = self.host._stopping
        while not stopping.is_set():
            reserved = self._reserve_slots(self.options.batch_size)
            if not reserved:
                continue
            try:
                messages = list(self.queue.receive_messages(
                    max_messages=reserved, messages_per_page=reserved,
                    visibility_timeout=int(self.host.message_lease_seconds)))
            except Exception as error:  # noqa: BLE001 - storage hiccup: report, back off, retry
                log.warning("queue %s: receiving failed (%s); retrying", self.queue_name, error)
                messages = []
            for _ in range(reserved - len(messages)):
                self.host._slots.release()
            if not messages:
                stopping.wait(interval)
                interval = min(interval * 2, self.options.max_polling_interval)
                continue
            interval = MIN_POLLING_INTERVAL
            for message in messages:
                self.host._queue_pool.submit(self._process, message)

    def _reserve_slots(self, wanted: int) -> int:
        """Take up to `wanted` free worker slots, waiting briefly for the first one."""
        if not self.host._slots.acquire(timeout=0.2):
            return 0
        taken = 1
        while taken < wanted and self.host._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _process(self, message: Any) -> None:
        try:
            if message.dequeue_count > self.options.max_dequeue_count:
                self._to_poison(message)  # e.g. a worker died on it repeatedly
                return
            try:
                body = base64.b64decode(message.content or "", validate=True)
            except (binascii.Error, ValueError):
                log.error("queue %s: message %s is not base64 (the trigger expects base64 messages)",
                          self.queue_name, message.id)
                self._failed(message)
                return
            outcome = self.host._invoke(
                self.function,
                QueueMessage(
                    id=message.id,
                    body=body,
                    dequeue_count=message.dequeue_count,
                    expiration_time=message.expires_on,
                    insertion_time=message.inserted_on,
                    time_next_visible=message.next_visible_on,
                    pop_receipt=message.pop_receipt,
                ),
                trigger=f"queue {self.queue_name}",
                retry_count=message.dequeue_count - 1,
                max_retry_count=self.options.max_dequeue_count,
            )
            if outcome.succeeded:
                self.queue.delete_message(message)
            else:
                self._failed(message)
        except Exception as error:  # noqa: BLE001 - storage failure around the invocation
            log.error("queue %s: message %s could not be settled: %s", self.queue_name, message.id, error)
        finally:
            self.host._slots.release()

    def _failed(self, message: Any) -> None:
        if message.dequeue_count >= self.options.max_dequeue_count:
            self._to_poison(message)
        else:  # visible again after host.json's visibilityTimeout
            self.queue.update_message(message, visibility_timeout=int(self.options.visibility_timeout))

    def _to_poison(self, message: Any) -> None:
        log.warning("Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
                    message.id, self.options.max_dequeue_count, self.poison_name)
        self.poison.send_message(message.content)
        self.queue.delete_message(message)


# --- the HTTP server ------------------------------------------------------------------------------


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def json(cls, status: int, document: Any) -> "HttpAnswer":
        return cls(status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(document).encode())

    @classmethod
    def from_result(cls, result: Any, function_name: str) -> "HttpAnswer":
        if result is None:
            return cls(204, {}, b"")
        if isinstance(result, (str, bytes)):
            body = result.encode("utf-8") if isinstance(result, str) else result
            return cls(200, {"Content-Type": "text/plain; charset=utf-8"}, body)
        if isinstance(result, func_abc.HttpResponse):
            headers = dict(result.headers.items())
            if not any(name.lower() == "content-type" for name in headers) and result.mimetype:
                charset = f"; charset={result.charset}" if result.charset else ""
                headers["Content-Type"] = f"{result.mimetype}{charset}"
            return cls(result.status_code, headers, result.get_body() or b"")
        log.error("function %s returned %s; an HTTP function must return HttpResponse, str or bytes",
                  function_name, type(result).__name__)
        return cls(500, {}, b"")


def _handler_class(host: DevHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "devhost"
        disable_nagle_algorithm = True  # one small response per request: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            pass  # invocations are logged by the host, without bodies or headers

        def _handle(self) -> None:
            try:
                body = self._read_body()
            except ValueError as error:
                self._send(HttpAnswer.json(400, {"error": str(error)}))
                return
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            base_url = f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"
            try:
                answer = host.http_answer(self.command, self.path, headers, body, base_url)
            except Exception:  # noqa: BLE001 - a host bug must still answer
                log.exception("dev host failed on %s %s", self.command, urlsplit(self.path).path)
                answer = HttpAnswer(500, {}, b"")
            self._send(answer)

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = self.headers.get("Content-Length")
            if length is None:
                return b""
            if not length.isdigit():
                raise ValueError(f"Content-Length {length!r} is not a number")
            return self.rfile.read(int(length))

        def _send(self, answer: HttpAnswer) -> None:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            body = b"" if self.command == "HEAD" else answer.body
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    return Handler


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.devhost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (default 7071)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--app", default="function_app", help="app module (dotted) or .py file (default function_app)")
    parser.add_argument("--app-dir", default=".", help="folder with host.json and local.settings.json (default .)")
    parser.add_argument("--workers", type=int, default=1, help="queue invocations run at once (default 1)")
    parser.add_argument("--principal-roles", nargs="*", default=list(DEFAULT_ROLES), metavar="ROLE",
                        help="app roles of the injected local principal (default Exports.Admin)")
    parser.add_argument("--principal-name", default="local.developer@localhost")
    parser.add_argument("--no-principal", action="store_true", help="do not inject a principal")
    parser.add_argument("--function-key", default=None, metavar="KEY",
                        help="require this key (x-functions-key or ?code=) on FUNCTION and ADMIN routes, as Azure does")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level.upper() != "DEBUG":
        from shared.telemetry import quiet_sdk_logging

        quiet_sdk_logging()  # else every poll of the queue listeners logs its request and response headers
    host = DevHost(
        app_module=args.app,
        port=args.port,
        workers=args.workers,
        principal_roles=None if args.no_principal else args.principal_roles,
        principal_name=args.principal_name,
        function_key=args.function_key,
        app_dir=args.app_dir,
        host=args.host,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        host.start()
    except DevHostError as error:
        print(f"devhost: {error}", file=sys.stderr)
        return 2
    print(f"Dev host listening on {host.url} (Ctrl+C to stop)", flush=True)
    if host.serves_root:
        print(f"Console: {host.url}/", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
