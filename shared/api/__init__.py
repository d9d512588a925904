"""The HTTP API (connections, segments, exports, runs), in plain Python so it runs without the host.

`function_app.py` turns a `func.HttpRequest` into an `ApiRequest`, calls `handle`, and turns the
`ApiResponse` back. Every route, its role and its status codes are documented in
`openapi/exports-api.json`; a test keeps the two in step.

Roles: `Exports.Admin` may do everything; `Exports.Contributor` may read segments and create, change,
run and read exports on connections an admin made usable by contributors, and sees only the id, name
and type of such connections.

Modules: `http` (request and response types), `validation` (request bodies), `routing` (routes,
access levels, dispatch), `access` (who may use which connection and export), and one module per
resource: `public` (health, OpenAPI document), `me` (the caller's identity and role), `connections`, `segments`, `exports`, `runs`.
`connectionlock`: saves of exports that tag contacts, one at a time per connection.
"""
from __future__ import annotations

# Importing the resource modules registers their routes, in the order the OpenAPI document lists them.
from . import public, me, connections, segments, exports, runs  # noqa: F401  (isort: skip)
from .http import ApiRequest, ApiResponse
from .routing import ROUTES, Access, Route, handle
from .validation import MAX_BODY_BYTES

__all__ = ["ApiRequest", "ApiResponse", "Access", "MAX_BODY_BYTES", "ROUTES", "Route", "handle"]
