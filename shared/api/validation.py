"""Request body validation: every bad field is reported at once, by its JSON path.

A resource declares its body as a tuple of `BodyField`s, each with a `Check`: a function of the value
and its path that returns the `FieldError`s it finds (none when the value is fine).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from .. import boundedjson
from ..boundedjson import shown_key
from ..problems import ApiProblem, FieldError, json_type
from .http import JSON_CONTENT_TYPE, ApiRequest

MAX_BODY_BYTES = 64 * 1024
_NOT_HEADER_SAFE = re.compile(r"[^\x21-\x7e\xa1-\xff]")  # anything but visible Latin-1

Check = Callable[[Any, str], list[FieldError]]


def text(max_length: int) -> Check:
    def check(value: Any, path: str) -> list[FieldError]:
        if not isinstance(value, str):
            return [FieldError(path, f"must be a string, got {json_type(value)}")]
        if not value.strip() or len(value) > max_length:
            return [FieldError(path, f"must be 1 to {max_length} characters, not blank")]
        return []
    return check


def token(max_length: int) -> Check:
    """A string without whitespace (keys, ids)."""
    as_text = text(max_length)

    def check(value: Any, path: str) -> list[FieldError]:
        errors = as_text(value, path)
        if not errors and any(char.isspace() for char in value):
            errors = [FieldError(path, "must not contain spaces or line breaks")]
        return errors
    return check


def header_token(max_length: int) -> Check:
    """A token sent in an HTTP header (API keys): printable Latin-1 only, which is all a header can carry."""
    as_token = token(max_length)

    def check(value: Any, path: str) -> list[FieldError]:
        errors = as_token(value, path)
        if not errors and _NOT_HEADER_SAFE.search(value):
            errors = [FieldError(path, "must hold only printable Latin-1 characters: it is sent in an HTTP header")]
        return errors
    return check


def integer(minimum: int, maximum: int) -> Check:
    def check(value: Any, path: str) -> list[FieldError]:
        if isinstance(value, bool) or not isinstance(value, int):
            return [FieldError(path, f"must be a whole number, got {json_type(value)}")]
        if not minimum <= value <= maximum:
            return [FieldError(path, f"must be between {minimum} and {maximum}, got {value}")]
        return []
    return check


def number(minimum: float, maximum: float) -> Check:
    def check(value: Any, path: str) -> list[FieldError]:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [FieldError(path, f"must be a number, got {json_type(value)}")]
        if not minimum <= value <= maximum:
            return [FieldError(path, f"must be between {minimum:g} and {maximum:g}, got {value:g}")]
        return []
    return check


def boolean(value: Any, path: str) -> list[FieldError]:
    return [] if isinstance(value, bool) else [FieldError(path, f"must be true or false, got {json_type(value)}")]


def one_of(*allowed: str) -> Check:
    def check(value: Any, path: str) -> list[FieldError]:
        if value in allowed:
            return []
        shown = _quoted(value) if isinstance(value, str) else json_type(value)
        return [FieldError(path, f"must be one of {', '.join(map(json.dumps, allowed))}, got {shown}")]
    return check


def list_of(item: Check, *, min_items: int, max_items: int) -> Check:
    def check(value: Any, path: str) -> list[FieldError]:
        if not isinstance(value, list):
            return [FieldError(path, f"must be a list, got {json_type(value)}")]
        if not min_items <= len(value) <= max_items:
            return [FieldError(path, f"must have {min_items} to {max_items} items, got {len(value)}")]
        errors = [error for index, entry in enumerate(value) for error in item(entry, f"{path}[{index}]")]
        seen: set[Any] = set()
        for index, entry in enumerate(value):
            if isinstance(entry, str) and entry in seen:
                errors.append(FieldError(f"{path}[{index}]", f"repeats {_quoted(entry)}"))
            seen.add(entry if isinstance(entry, str) else id(entry))
        return errors
    return check


def _quoted(value: str, limit: int = 64) -> str:
    """A string value as a message shows it: JSON-quoted, at most `limit` characters of it."""
    return json.dumps(value if len(value) <= limit else value[:limit] + "…")


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
    errors = [FieldError(shown_key(name), "is not a known field") for name in data if name not in known]
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
        raise ApiProblem("unsupported_media_type", f"Content-Type is {content_type[:100]!r}; send {JSON_CONTENT_TYPE}")
    if not request.body.strip():
        raise ApiProblem("invalid_json", "the body is empty; send a JSON object")
    # Messages give positions and paths only: they never quote the body, which may hold an API key.
    try:
        data = boundedjson.loads(request.body)
    except boundedjson.JsonSyntaxError as error:  # not UTF-8, not JSON, or nested too deep
        raise ApiProblem("invalid_json", f"the body {error}") from None
    except boundedjson.JsonValueError as error:  # numbers too long or too large, NaN, lone surrogates
        raise ApiProblem("validation_failed", f"the body {error}",
                         [FieldError(path or "(body)", message) for path, message in error.problems]) from None
    if not isinstance(data, dict):
        raise ApiProblem("invalid_json", f"the body must be a JSON object, got {json_type(data)}")
    return data
