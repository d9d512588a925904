"""Segments: what Customer Insights (or someone) wrote to the segments container, with its columns."""
from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from ..problems import ApiProblem, FieldError
from ..settings import Settings
from .http import ApiResponse, json_response
from .routing import Access, Context, route


def readable_segments(settings: Settings) -> tuple[list[Any], list[str]]:
    """The readable segments, and why others could not be read (one broken export hides no other)."""
    from .. import segments
    from ..storage import container

    problems: list[Any] = []
    try:
        found = segments.list_segments(container(settings, settings.segments_container), errors=problems)
    except ResourceNotFoundError:
        return [], []  # no container yet: no segments
    return list(found), [str(problem) for problem in problems]


def chosen_segments(settings: Settings, names: list[str]) -> list[Any]:
    """The segments an export names, found as the run engine finds them (case-insensitively)."""
    found, problems = readable_segments(settings)
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


def _segment_to_api(segment: Any) -> dict[str, Any]:
    return {
        "name": segment.name,
        "layout": segment.layout,
        "columns": list(segment.columns),
        "updatedAt": segment.updated_at.isoformat().replace("+00:00", "Z") if segment.updated_at else None,
    }


@route("GET", "/segments", Access.MEMBER)
def list_segments(context: Context) -> ApiResponse:
    found, problems = readable_segments(context.settings)
    return json_response(200, {"segments": [_segment_to_api(item) for item in found], "errors": problems})
