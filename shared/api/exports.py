"""Exports: which segments go to which connection, how fields map, and what starts their runs.

Contributors may create, change, run and delete exports on connections usable by contributors.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from ..boundedjson import shown_key
from ..documents import (DEFAULT_FULL_RESYNC_DAYS, DEFAULT_MAX_REMOVAL_PERCENT, RUN_ON_VALUES, Connection, DocumentConflictError, DocumentNotFoundError,
                         Export, new_id, utc_now)
from ..problems import ApiProblem, FieldError, json_type
from ..schedule import InvalidScheduleError, Schedule, app_schedule, next_run_at, schedule_of
from ..settings import Settings
from . import connectionlock
from .access import get_export as _get_export
from .access import require_usable
from .http import ApiResponse, json_response, location
from .routing import Access, Context, route
from .mappings import mapping_errors
from .segments import chosen_segments
from .validation import BodyField, boolean, integer, list_of, number, one_of, parse_body, text, token

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

log = logging.getLogger(__name__)

MAX_TAG_LENGTH = 100


def _schedule(value: Any, path: str) -> list[FieldError]:
    """`{"cron": ..., "timeZone": ...}`: errors at `schedule.cron` / `schedule.timeZone` (null is allowed)."""
    try:
        Schedule.from_dict(value, path=path)
    except InvalidScheduleError as error:
        return list(error.problems)
    return []


def _tags(value: Any, path: str) -> list[FieldError]:
    """Segment name -> tag name (1-100 characters); that the names are the export's segments is
    checked with the body (`_tag_errors`)."""
    if not isinstance(value, dict):
        return [FieldError(path, f"must be an object of segment name -> tag name, got {json_type(value)}")]
    if len(value) > 100:  # at most one entry per segment
        return [FieldError(path, f"must have at most 100 entries, got {len(value)}")]
    check = text(MAX_TAG_LENGTH)
    return [error for segment, tag in value.items() for error in check(tag, f"{path}.{shown_key(segment)}")]


def _tag_errors(body: dict[str, Any]) -> list[FieldError]:
    """Every `tags` key must name one of the body's segments (case-insensitively, as segments are found),
    each segment at most once."""
    segments = {name.lower(): name for name in body["segments"]}
    named: dict[str, str] = {}
    errors = []
    for key in body["tags"]:
        where = f"tags.{shown_key(key)}"
        if key.lower() not in segments:
            errors.append(FieldError(where, "is not one of the export's segments"))
        elif key.lower() in named:
            errors.append(FieldError(where, f"names the same segment as tags.{shown_key(named[key.lower()])}"))
        else:
            named[key.lower()] = key
    return errors


def _stored_tags(tags: dict[str, str], segment_names: list[str]) -> dict[str, str]:
    """The `tags` entries as stored: under the segments' names as found, without those naming a segment's
    tag as its own name (the default)."""
    by_name = {name.lower(): name for name in segment_names}
    stored = {by_name[key.lower()]: tag.strip() for key, tag in tags.items()}
    return {segment: tag for segment, tag in stored.items() if tag != segment}


def _check_tags_free(context: Context, export: Export, state: ContainerClient) -> None:
    """409 `tag_in_use` when another export on the same connection sets one of this export's tags, or
    still owns it (a tag it renamed or stopped setting stays on the contacts it tagged until its next
    run takes it off): each export removes only the tags it set, so no two may own the same one."""
    mine = export.effective_tags()
    if not mine:
        return
    for other in context.store.list_exports():
        if other.id == export.id or other.connection_id != export.connection_id:
            continue
        shared, why = [tag for tag in mine if tag in other.effective_tags()], "tags contacts {!r}"
        if not shared:
            owned = _state_tags(state, other.id)
            shared = [tag for tag in mine if tag in owned]
            why = "still owns tag {!r} on the contacts it tagged, until its next run takes it off"
        if shared:
            tag = shared[0]
            segment = mine[tag]  # the error sits where the fix goes: the segment's tag, named or not
            raise ApiProblem("tag_in_use", f"export {other.display_name!r} ({other.id}) on the same connection "
                             f"{why.format(tag)}: choose another tag for segment {segment!r}",
                             [FieldError(f"tags.{shown_key(segment)}", f"tag {tag!r} is set by export "
                                                                       f"{other.display_name!r}")],
                             extra={"tag": tag, "exportId": other.id})


def _state_tags(state: ContainerClient, export_id: str) -> tuple[str, ...]:
    """The tags an export's sync state (in the `state` container) says it set on some contact (its header
    only; none before a run)."""
    from .. import sync

    found = sync.SyncStateStore(state).load_info(export_id)
    return found[0].tags if found else ()


def _save_with_free_tags(context: Context, export: Export, save: Callable[[], None]) -> None:
    """Check that the export's tags are free (`_check_tags_free`) and `save()` it, both under its
    connection's lock: of two saves claiming one tag at the same moment, one is stored and the other
    answers 409 `tag_in_use`. An export that tags nothing takes no lock (it cannot take a tag)."""
    from ..storage import container

    if not export.effective_tags():  # nothing to check (_check_tags_free would find nothing either)
        save()
        return
    state = container(context.settings, context.settings.state_container)
    try:
        with connectionlock.locked(state, export.connection_id) as hold:
            _check_tags_free(context, export, state)
            hold.check()
            save()
    except connectionlock.ConnectionBusyError as error:
        raise ApiProblem("edit_conflict", f"{error}; retry") from None


EXPORT_FIELDS = (
    BodyField("displayName", text(200), required=True),
    BodyField("connectionId", token(64), required=True),
    BodyField("segments", list_of(text(256), min_items=1, max_items=100), required=True),
    BodyField("mapping", mapping_errors, required=True),
    BodyField("runOn", list_of(one_of(*RUN_ON_VALUES), min_items=0, max_items=2),
              default=lambda: list(RUN_ON_VALUES)),
    BodyField("tagContacts", boolean, default=True),
    BodyField("tags", _tags, default=dict),
    BodyField("schedule", _schedule, default=None, nullable=True),
    BodyField("maxRemovalPercent", number(0, 100), default=DEFAULT_MAX_REMOVAL_PERCENT),
    BodyField("fullResyncDays", integer(0, 365), default=DEFAULT_FULL_RESYNC_DAYS),
)


def _stored_schedule(value: dict[str, Any] | None) -> dict[str, str] | None:
    """The schedule as stored: normalised (cron whitespace, the zone's canonical name, UTC by default)."""
    return None if value is None else Schedule.from_dict(value).to_dict()


def next_run(export: Export, settings: Settings, now: datetime | None = None) -> str | None:
    """When the timer next starts the export (ISO 8601 UTC), or None: not on schedule (or no further time)."""
    try:
        schedule = schedule_of(export, app_schedule(settings.export_schedule))
    except InvalidScheduleError as error:  # a stored schedule this host can no longer read
        log.warning("export %s: its schedule cannot be read: %s", export.id, error)
        return None
    at = None if schedule is None else next_run_at(schedule, now or datetime.now(timezone.utc))
    return None if at is None else at.isoformat(timespec="seconds").replace("+00:00", "Z")


def export_view(export: Export, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    return {**export.to_api(), "nextRunAt": next_run(export, settings, now)}


def _parsed_body(context: Context) -> dict[str, Any]:
    body = parse_body(context.request, EXPORT_FIELDS)
    errors = _tag_errors(body)
    if errors:
        raise ApiProblem("validation_failed", f"{len(errors)} invalid field(s): "
                         + "; ".join(f"{error.field} {error.message}" for error in errors), errors)
    return body


def _validated_export(context: Context, body: dict[str, Any]) -> tuple[Connection, list[str], dict[str, Any]]:
    """Check an export body against stored state: connection, segments, and the mapping's columns."""
    from .. import mapping

    try:  # checked field by field by parse_body (mapping_errors): this only parses it
        field_mapping = mapping.FieldMapping.from_dict(body["mapping"])
    except mapping.MappingError as error:
        raise ApiProblem("validation_failed", f"mapping: {error}", list(error.problems)) from None
    try:
        connection = context.store.get_connection(body["connectionId"])
    except DocumentNotFoundError:
        raise ApiProblem("unknown_connection", f"connection {body['connectionId']!r} does not exist",
                         [FieldError("connectionId", "names no connection")]) from None
    require_usable(context, connection)

    chosen = chosen_segments(context.settings, body["segments"])
    errors = []
    for index, segment in enumerate(chosen):
        try:
            mapping.bind(field_mapping, segment.columns, segment.name)
        except mapping.MappingError as error:  # the message names the segment and the missing columns
            errors.append(FieldError(f"segments[{index}]", str(error)))
    if errors:
        raise ApiProblem("mapping_invalid", "; ".join(error.message for error in errors), errors)
    return connection, [segment.name for segment in chosen], field_mapping.to_dict()


def _export_response(context: Context, status: int, export: Export,
                     extra_headers: dict[str, str] | None = None) -> ApiResponse:
    headers = {"ETag": export.etag} if export.etag else {}
    return json_response(status, export_view(export, context.settings), {**headers, **(extra_headers or {})})


@route("POST", "/exports", Access.MEMBER)
def create_export(context: Context) -> ApiResponse:
    body = _parsed_body(context)
    connection, segment_names, field_mapping = _validated_export(context, body)
    now = utc_now()
    export = Export(
        id=new_id(), display_name=body["displayName"].strip(), connection_id=connection.id,
        segments=segment_names, mapping=field_mapping, run_on=list(body["runOn"]),
        tag_contacts=body["tagContacts"], schedule=_stored_schedule(body["schedule"]),
        tags=_stored_tags(body["tags"], segment_names),
        max_removal_percent=float(body["maxRemovalPercent"]), full_resync_days=body["fullResyncDays"],
        created_at=now, updated_at=now, created_by=context.identity,
    )
    _save_with_free_tags(context, export, lambda: context.store.put_export(export))  # saving never runs it
    log.info("export %s created by %s", export.id, context.identity)
    return _export_response(context, 201, export, location(f"exports/{export.id}"))


@route("GET", "/exports", Access.MEMBER)
def list_exports(context: Context) -> ApiResponse:
    exports = context.store.list_exports()
    if not context.is_admin:
        usable = {item.id for item in context.store.list_connections() if item.usable_by_contributors}
        exports = [item for item in exports if item.connection_id in usable]
    now = datetime.now(timezone.utc)
    return json_response(200, {"exports": [export_view(item, context.settings, now) for item in exports]})


@route("GET", "/exports/{exportId}", Access.MEMBER)
def get_export(context: Context) -> ApiResponse:
    return _export_response(context, 200, _get_export(context, context.params["exportId"]))


@route("PUT", "/exports/{exportId}", Access.MEMBER)
def replace_export(context: Context) -> ApiResponse:
    current = _get_export(context, context.params["exportId"])
    if_match = context.request.headers.get("If-Match")
    if if_match and if_match.strip() not in ("*", current.etag):
        raise ApiProblem("precondition_failed", f"export {current.id!r} changed since you read it; GET it again")
    body = _parsed_body(context)
    connection, segment_names, field_mapping = _validated_export(context, body)
    from .runs import engine

    deleting = engine().deleting_run(context.settings, current.id)
    if deleting is not None:
        raise ApiProblem("run_in_progress", f"export {current.id!r} is being deleted: run {deleting.run_id!r} is taking "
                         "its tags off Omnisend; cancel that run to keep the export", extra={"runId": deleting.run_id})
    export = Export(
        id=current.id, display_name=body["displayName"].strip(), connection_id=connection.id,
        segments=segment_names, mapping=field_mapping, run_on=list(body["runOn"]),
        tag_contacts=body["tagContacts"], schedule=_stored_schedule(body["schedule"]),
        tags=_stored_tags(body["tags"], segment_names),
        max_removal_percent=float(body["maxRemovalPercent"]), full_resync_days=body["fullResyncDays"],
        created_at=current.created_at, updated_at=utc_now(), created_by=current.created_by,
    )

    def save() -> None:
        try:
            context.store.put_export(export, if_match=current.etag)
        except DocumentConflictError:
            code = "precondition_failed" if if_match else "edit_conflict"
            raise ApiProblem(code, f"export {current.id!r} was changed at the same time; GET it and retry") from None

    _save_with_free_tags(context, export, save)
    log.info("export %s replaced by %s", export.id, context.identity)
    return _export_response(context, 200, export)


def _remove_tags(context: Context) -> bool:
    raw = context.request.query.get("removeTags")
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise ApiProblem("validation_failed", "removeTags must be true or false",
                         [FieldError("removeTags", "must be true or false")])
    return raw == "true"


@route("DELETE", "/exports/{exportId}", Access.MEMBER)
def delete_export(context: Context) -> ApiResponse:
    """Delete the export, its sync state and what else is kept for it; its runs are cancelled and stay
    readable. `?removeTags=true`: first a run takes every tag the export owns off Omnisend's contacts,
    and the export goes when that run succeeds (202, the run's location)."""
    export = _get_export(context, context.params["exportId"])
    remove_tags = _remove_tags(context)
    from .runs import engine

    runs = engine()
    if not remove_tags:
        runs.delete_export(context.settings, export.id)
        log.info("export %s deleted by %s", export.id, context.identity)
        return ApiResponse(204)
    try:
        run = runs.start_tag_removal(context.settings, export)
    except runs.RunInProgressError as error:
        run = runs.deleting_run(context.settings, export.id)
        if run is None or run.run_id != error.run_id:
            raise ApiProblem("run_in_progress", f"export {export.id!r} has run {error.run_id!r} in progress; wait for "
                             "it or cancel it, then delete the export", extra={"runId": error.run_id}) from None
    log.info("export %s: run %s removes its tags, then deletes it (asked by %s)", export.id, run.run_id,
             context.identity)
    return json_response(202, {"runId": run.run_id, "status": run.status.value}, location(f"runs/{run.run_id}"))
