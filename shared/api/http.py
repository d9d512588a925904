"""Requests and responses of the HTTP API, independent of the Functions host.

`function_app.py` turns a `func.HttpRequest` into an `ApiRequest` and an `ApiResponse` back; the
dev host and the tests build them directly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..problems import PROBLEM_CONTENT_TYPE, ApiProblem

JSON_CONTENT_TYPE = "application/json"


class Headers(Mapping[str, str]):
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
        return f"Headers({sorted(self._items)})"


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # after "/api/", e.g. "exports/abc/runs"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "headers", Headers(self.headers))

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
    content_type = {"Content-Type": f"{JSON_CONTENT_TYPE}; charset=utf-8"}
    return ApiResponse(status, _encode(data), {**content_type, **(headers or {})})


def problem_response(problem: ApiProblem, instance: str | None = None) -> ApiResponse:
    return ApiResponse(problem.status, _encode(problem.to_api(instance)),
                       {"Content-Type": PROBLEM_CONTENT_TYPE, **problem.headers})


def location(path: str) -> dict[str, str]:
    """The Location header of a resource, e.g. location("exports/abc")."""
    return {"Location": f"/api/{path}"}


def _encode(data: Any) -> bytes:
    # A lone surrogate (from a path or a stored name) cannot be UTF-8: it is written as its JSON escape.
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "backslashreplace")
