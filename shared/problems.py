"""RFC 9457 problem details for the HTTP API, each with a stable machine-readable `code`.

Clients branch on `code` (stable) rather than on `title` or `detail` (human text that may change).
The catalogue below is the complete list; the OpenAPI document enumerates the same codes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:omnisend-export:problem:"

# code -> (HTTP status, title)
PROBLEMS: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "The request body is not valid JSON"),
    "validation_failed": (400, "The request has invalid fields"),
    "unauthenticated": (401, "Sign-in required"),
    "invalid_principal": (401, "The client principal cannot be read"),
    "forbidden": (403, "Your role does not allow this"),
    "connection_not_usable": (403, "The connection is not usable by contributors"),
    "route_not_found": (404, "No such route"),
    "connection_not_found": (404, "No such connection"),
    "export_not_found": (404, "No such export"),
    "run_not_found": (404, "No such run"),
    "not_a_preview": (404, "The run is not a preview and has no report"),
    "method_not_allowed": (405, "Method not allowed on this route"),
    "connection_in_use": (409, "The connection is used by exports"),
    "run_in_progress": (409, "The export has a run in progress"),
    "tag_in_use": (409, "Another export on the connection sets the same tag"),
    "preview_not_ready": (409, "The preview has no report yet"),
    "edit_conflict": (409, "The document was changed at the same time"),
    "no_removals_held": (409, "The run holds no tag removals"),
    "removals_already_approved": (409, "The run's held removals were approved already"),
    "sync_state_replaced": (409, "A later run replaced the export's sync state"),
    "precondition_failed": (412, "The document changed since you read it"),
    "body_too_large": (413, "The request body is too large"),
    "unsupported_media_type": (415, "The request body must be JSON"),
    "consent_required": (422, "Consent to the data-privacy statement is required"),
    "omnisend_rejected_key": (422, "Omnisend rejected the API key"),
    "unknown_connection": (422, "The export names a connection that does not exist"),
    "unknown_segments": (422, "The export names segments that do not exist"),
    "mapping_invalid": (422, "The mapping does not fit the segments"),
    "internal_error": (500, "Internal error"),
    "stored_document_invalid": (500, "A stored document cannot be read"),
    "not_implemented": (501, "Not implemented yet"),
    "omnisend_unreachable": (502, "Omnisend cannot be reached"),
    "storage_unavailable": (503, "Storage is unavailable"),
    "secret_store_unavailable": (503, "The secret store is unavailable"),
}


@dataclass(frozen=True)
class FieldError:
    field: str  # a JSON path into the request body, e.g. "segments[1]" or "mapping.email"
    message: str

    def to_api(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass
class ApiProblem(Exception):
    """Raised anywhere in a handler; the API turns it into a problem response."""

    code: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # extension members, e.g. runId
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in PROBLEMS:
            raise ValueError(f"unknown problem code {self.code!r}: add it to PROBLEMS")
        super().__init__(f"{self.code}: {self.detail}")

    @property
    def status(self) -> int:
        return PROBLEMS[self.code][0]

    def to_api(self, instance: str | None = None) -> dict[str, Any]:
        status, title = PROBLEMS[self.code]
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_PREFIX + self.code,
            "title": title,
            "status": status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [error.to_api() for error in self.errors]
        body.update(self.extra)
        return body


def json_type(value: Any) -> str:
    """What kind of JSON value `value` is, as an error message says it ("a string", "an object", ...)."""
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
