"""Who the caller is, as the API sees them: their identity and the role that decides what they may do.

The web console asks this once when it starts, instead of guessing the role from what other routes allow.
"""
from __future__ import annotations

from .http import ApiResponse, json_response
from .routing import Access, Context, route


@route("GET", "/me", Access.MEMBER)
def get_me(context: Context) -> ApiResponse:
    # MEMBER routes are reached only by admins and contributors (routing._authorize): an admin who is also
    # a contributor is an admin, as everywhere else in the API.
    role = "admin" if context.is_admin else "contributor"
    return json_response(200, {"identity": context.identity, "role": role})
