"""Runs: start one, list an export's runs, read a run and its rejected rows, cancel it."""
from __future__ import annotations

import logging
import re
from typing import Any

from ..problems import ApiProblem, FieldError
from .access import get_export
from .http import ApiResponse, json_response, location
from .routing import Access, Context, route

log = logging.getLogger(__name__)

_LIMIT = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit also takes "²", which int() refuses


def engine():
    """The run engine (`shared.runs`), imported when first needed."""
    try:
        from .. import runs
    except ImportError as error:
        raise ApiProblem("not_implemented", f"the run engine is not available: {error}") from None
    return runs


def _limit(context: Context, default: int = 50, maximum: int = 1000) -> int:
    raw = context.request.query.get("limit")
    if raw is None:
        return default
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise ApiProblem("validation_failed", f"limit must be a whole number from 1 to {maximum}",
                         [FieldError("limit", f"must be a whole number from 1 to {maximum}")])
    return int(raw)


@route("POST", "/exports/{exportId}/runs", Access.MEMBER)
def start_run(context: Context) -> ApiResponse:
    export = get_export(context, context.params["exportId"])
    runs = engine()
    try:
        run = runs.start_run(context.settings, export, "manual")
    except runs.RunInProgressError as error:
        raise ApiProblem("run_in_progress", f"export {export.id!r} has run {error.run_id!r} in progress; wait for "
                         "it or cancel it", extra={"runId": error.run_id}) from None
    view = run.to_api()
    log.info("run %s of export %s started by %s", view["runId"], export.id, context.identity)
    return json_response(202, {"runId": view["runId"], "status": view["status"]}, location(f"runs/{view['runId']}"))


@route("GET", "/exports/{exportId}/runs", Access.MEMBER)
def list_runs(context: Context) -> ApiResponse:
    export = get_export(context, context.params["exportId"])
    limit = _limit(context)
    runs = engine().list_runs(context.settings, export.id, limit=limit)
    return json_response(200, {"runs": [run.to_api() for run in runs]})


def _get_run(context: Context) -> Any:
    """A run the caller may see: through its export, as for the export itself."""
    runs = engine()
    run_id = context.params["runId"]
    try:
        run = runs.get_run(context.settings, run_id)
    except runs.RunNotFoundError:
        raise ApiProblem("run_not_found", f"run {run_id!r} does not exist") from None
    if not context.is_admin:
        try:
            get_export(context, run.export_id)
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
    csv_bytes = engine().rejects_csv(context.settings, run_id)
    return ApiResponse(200, csv_bytes, {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="rejects-{run_id}.csv"',
    })


@route("POST", "/runs/{runId}/cancel", Access.MEMBER)
def cancel_run(context: Context) -> ApiResponse:
    run = _get_run(context)
    cancelled = engine().cancel_run(context.settings, run.to_api()["runId"])
    log.info("run %s cancelled by %s", run.to_api()["runId"], context.identity)
    return json_response(200, cancelled.to_api())
