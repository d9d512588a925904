"""The routes anyone may call: a health probe and the OpenAPI document."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .http import JSON_CONTENT_TYPE, ApiResponse, json_response
from .routing import Access, Context, route

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi" / "exports-api.json"


@route("GET", "/health", Access.PUBLIC)
def get_health(context: Context) -> ApiResponse:
    return json_response(200, {"status": "ok"})


@lru_cache(maxsize=1)
def _openapi_document() -> bytes:
    return OPENAPI_PATH.read_bytes()


@route("GET", "/openapi.json", Access.PUBLIC)
def get_openapi(context: Context) -> ApiResponse:
    return ApiResponse(200, _openapi_document(), {"Content-Type": f"{JSON_CONTENT_TYPE}; charset=utf-8"})
