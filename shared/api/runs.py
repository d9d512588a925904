"""Runs: start one (incremental, full or preview), list an export's runs, read a run, its rejected rows
and a preview's report, cancel it, approve its held tag removals.

A run is judged by the connection it used (its snapshot of the export), not by the export's current
connection: moving an export to a connection contributors may use opens its new runs to them, never
its old ones. Contributors read a run's error without URLs, paths and secret names.
"""
from __future__ import annotations

import logging
import re
from typing import Any

from ..keystore import SECRET_NAME_PREFIX
from ..problems import ApiProblem, FieldError
from .access import get_export
from .http import ApiResponse, json_response, location
from .routing import Access, Context, route
from .validation import BodyField, one_of, parse_body

log = logging.getLogger(__name__)

_LIMIT = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit also takes "²", which int() refuses

MODES = ("incremental", "full", "preview")  # shared.sync.SyncMode's values
# No body (or no mode, or null): the planner decides, i.e. incremental, or full for an export's first run.
START_FIELDS = (BodyField("mode", one_of(*MODES), default=None, nullable=True),)


def engine():
    """The run engine (`shared.runs`), imported when first needed."""
    try:
        from .. import runs
    except ImportError as error:
        raise ApiProblem("not_implemented", f"the run engine is not available: {error}") from None
    return runs


def _run_connection_id(run: Any) -> str:
    """The id of the connection the run used, from the run's own snapshot of its export."""
    return run.export.connection_id


def _run_id(run: Any) -> str:
    return run.to_api()["runId"]


def _limit(context: Context, default: int = 50, maximum: int = 1000) -> int:
    raw = context.request.query.get("limit")
    if raw is None:
        return default
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise ApiProblem("validation_failed", f"limit must be a whole number from 1 to {maximum}",
                         [FieldError("limit", f"must be a whole number from 1 to {maximum}")])
    return int(raw)


# --- what a contributor may see of a run -----------------------------------------------------------


def _run_problem(context: Context, run: Any) -> ApiProblem | None:
    """Why the caller may not see `run`, or None: admins see every run, contributors the runs that used a
    connection usable by contributors (the connection as it is now)."""
    if context.is_admin:
        return None
    connection = context.connection(_run_connection_id(run))
    if connection is None:
        return ApiProblem("forbidden", f"the connection run {_run_id(run)!r} used was deleted; only admins can "
                          "see the run")
    if not connection.usable_by_contributors:
        return ApiProblem("connection_not_usable", f"run {_run_id(run)!r} used connection {connection.id!r}, "
                          "which is usable by admins only")
    return None


_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)]")  # punctuation after it stays
_AZURE_HOST = re.compile(r"\b(?:[A-Za-z0-9-]+\.)+(?:azure\.net|windows\.net|azure\.cn|chinacloudapi\.cn|"
                         r"usgovcloudapi\.net)\b", re.IGNORECASE)
_SECRET_NAME = re.compile(re.escape(SECRET_NAME_PREFIX) + r"[0-9A-Za-z-]*")
_ABSOLUTE_PATH = re.compile(r"(?:(?<=[\s'\"(=])|^)(?:/[^\s/'\"]+){2,}/?")


def redact_error(error: str) -> str:
    """A run's error as contributors see it: without URLs (Key Vault, storage), Azure host names,
    absolute paths (the local secret folder) and secret names. The rest still says what went wrong."""
    error = _URL.sub("<url>", error)
    error = _AZURE_HOST.sub("<host>", error)
    error = _ABSOLUTE_PATH.sub("<path>", error)
    return _SECRET_NAME.sub("<secret>", error)


def _run_view(context: Context, run: Any) -> dict[str, Any]:
    view = run.to_api()
    if not context.is_admin and view.get("error"):
        view["error"] = redact_error(view["error"])
    if not context.is_admin and view.get("removalsApproved", {}).get("error"):
        view["removalsApproved"]["error"] = redact_error(view["removalsApproved"]["error"])
    return view


def _get_run(context: Context) -> Any:
    """A run the caller may see (see `_run_problem`)."""
    runs = engine()
    run_id = context.params["runId"]
    try:
        run = runs.get_run(context.settings, run_id)
    except runs.RunNotFoundError:
        raise ApiProblem("run_not_found", f"run {run_id!r} does not exist") from None
    problem = _run_problem(context, run)
    if problem:
        raise problem
    return run


# --- routes ------------------------------------------------------------------------------------------


@route("POST", "/exports/{exportId}/runs", Access.MEMBER)
def start_run(context: Context) -> ApiResponse:
    export = get_export(context, context.params["exportId"])
    mode = parse_body(context.request, START_FIELDS)["mode"] if context.request.body.strip() else None
    runs = engine()
    try:
        run = runs.start_run(context.settings, export, "manual", mode=mode)
    except runs.RunInProgressError as error:
        raise ApiProblem("run_in_progress", f"export {export.id!r} has run {error.run_id!r} in progress; wait for "
                         "it or cancel it", extra={"runId": error.run_id}) from None
    view = run.to_api()
    log.info("run %s of export %s started by %s (mode %s)", view["runId"], export.id, context.identity,
             mode or "default")
    return json_response(202, {"runId": view["runId"], "status": view["status"]}, location(f"runs/{view['runId']}"))


@route("GET", "/exports/{exportId}/runs", Access.MEMBER)
def list_runs(context: Context) -> ApiResponse:
    """The export's runs, newest first; a contributor's list leaves out runs on connections they may not use."""
    export = get_export(context, context.params["exportId"])
    limit = _limit(context)
    runs = engine().list_runs(context.settings, export.id, limit=limit)
    visible = [run for run in runs if _run_problem(context, run) is None]
    return json_response(200, {"runs": [_run_view(context, run) for run in visible]})


@route("GET", "/runs/{runId}", Access.MEMBER)
def get_run(context: Context) -> ApiResponse:
    return json_response(200, _run_view(context, _get_run(context)))


@route("GET", "/runs/{runId}/rejects", Access.MEMBER)
def get_rejects(context: Context) -> ApiResponse:
    run = _get_run(context)
    csv_bytes = engine().rejects_csv(context.settings, _run_id(run))
    return ApiResponse(200, csv_bytes, {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="rejects-{_run_id(run)}.csv"',
    })


@route("GET", "/runs/{runId}/preview", Access.MEMBER)
def get_preview(context: Context) -> ApiResponse:
    """A preview run's report: what an incremental run would send, skip and untag, and the removal gate."""
    run = _get_run(context)
    view = run.to_api()
    if view["mode"] != "preview":
        raise ApiProblem("not_a_preview", f"run {view['runId']!r} is not a preview (mode {view['mode']}); a run "
                         'started with {"mode": "preview"} has a report')
    report = engine().preview_report(context.settings, view["runId"])
    if report is None:
        raise ApiProblem("preview_not_ready", f"run {view['runId']!r} is {view['status']}: its report is not "
                         "there (yet); read the run for its status or error")
    return json_response(200, {"runId": view["runId"], "exportId": view["exportId"], **report})


@route("POST", "/runs/{runId}/cancel", Access.MEMBER)
def cancel_run(context: Context) -> ApiResponse:
    run = _get_run(context)
    cancelled = engine().cancel_run(context.settings, _run_id(run))
    log.info("run %s cancelled by %s", _run_id(run), context.identity)
    return json_response(200, _run_view(context, cancelled))


@route("POST", "/runs/{runId}/approve-removals", Access.MEMBER)
def approve_removals(context: Context) -> ApiResponse:
    """Apply the tag removals the run's removal gate held: whoever may run the run's export may approve."""
    run = _get_run(context)
    get_export(context, run.export_id)
    runs = engine()
    try:
        approved = runs.approve_removals(context.settings, _run_id(run), context.identity)
    except runs.ApprovalRefused as refusal:
        raise _refused(refusal) from None
    log.info("held removals of run %s approved by %s", _run_id(run), context.identity)
    return json_response(202, _run_view(context, approved), location(f"runs/{_run_id(run)}"))


def _refused(refusal: Any) -> ApiProblem:
    """The 409 of a refused approval (the run engine's refusal codes are the API's problem codes)."""
    if refusal.code == "run_in_progress":
        return ApiProblem("run_in_progress", refusal.detail, extra={"runId": refusal.active_run})
    if refusal.code == "sync_state_replaced":
        return ApiProblem("sync_state_replaced", refusal.detail)
    if refusal.code == "removals_already_approved":
        return ApiProblem("removals_already_approved", refusal.detail)
    return ApiProblem("no_removals_held", refusal.detail)
