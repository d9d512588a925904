"""Connections: an Omnisend API key (kept in the secret store), who may use it, and its rate budget.

Only admins create and delete connections; contributors see the id, name and type of those usable
by contributors.
"""
from __future__ import annotations

import logging
from typing import Any

from ..documents import USABLE_BY_VALUES, Connection, DocumentNotFoundError, new_id, utc_now
from ..problems import ApiProblem, FieldError
from ..settings import Settings
from .access import get_connection as _get_connection
from .access import require_usable
from .http import ApiResponse, json_response, location
from .routing import Access, Context, route
from .validation import BodyField, boolean, header_token, integer, one_of, parse_body, text

log = logging.getLogger(__name__)

CONNECTION_FIELDS = (
    BodyField("displayName", text(200), required=True),
    BodyField("apiKey", header_token(500), required=True),
    BodyField("usableBy", one_of(*USABLE_BY_VALUES), default="admins"),
    BodyField("consent", boolean, default=False),
    BodyField("contactLimit", integer(1, 100_000_000), nullable=True),
    BodyField("requestsPerMinute", integer(1, 100_000), default=400),
    BodyField("tagRequestsPerMinute", integer(1, 100_000), default=60),
)


@route("POST", "/connections", Access.ADMIN)
def create_connection(context: Context) -> ApiResponse:
    body = parse_body(context.request, CONNECTION_FIELDS)
    if body["consent"] is not True:
        raise ApiProblem("consent_required", "set consent to true: contact data leaves Customer Insights and "
                         "you are responsible for the contacts' consent", [FieldError("consent", "must be true")])
    api_key: str = body["apiKey"].strip()
    _check_key(context.settings, api_key)

    from ..keystore import SecretStoreError, secret_name_for, secret_store

    now = utc_now()
    connection = Connection(
        id=new_id(), display_name=body["displayName"].strip(), secret_name="", export_user=context.identity,
        consent_at=now, created_at=now, created_by=context.identity, usable_by=body["usableBy"],
        contact_limit=body["contactLimit"], requests_per_minute=body["requestsPerMinute"],
        tag_requests_per_minute=body["tagRequestsPerMinute"],
    )
    connection.secret_name = secret_name_for(connection.id)
    store = secret_store(context.settings)
    try:
        store.set(connection.secret_name, api_key)
    except SecretStoreError as error:
        raise ApiProblem("secret_store_unavailable", f"the key could not be stored: {error}") from None
    try:
        context.store.put_connection(connection)
    except Exception:
        _forget_secret(store, connection.secret_name)  # no connection document, so no key either
        raise
    log.info("connection %s created by %s", connection.id, context.identity)
    return json_response(201, connection.to_api(full=True), location(f"connections/{connection.id}"))


def _check_key(settings: Settings, api_key: str) -> None:
    """Ask Omnisend whether the key works, without writing anything there."""
    import requests

    from .. import omnisend
    from ..ratelimit import shared_limiter

    # One quick retry only: a person is waiting for this answer. The check is one read, counted in this
    # process's window for the key (the connection, and so its shared budget, does not exist yet).
    client = omnisend.OmnisendClient(api_key, base_url=settings.omnisend_api_url, max_retries=1, timeout=10.0,
                                     limiter=shared_limiter(api_key, settings.omnisend_api_url))
    try:
        client.check_key()
    except (omnisend.AuthenticationError, omnisend.PermissionDeniedError) as error:
        raise ApiProblem("omnisend_rejected_key", f"Omnisend did not accept the key: {error}",
                         [FieldError("apiKey", "was rejected by Omnisend")]) from None
    except (omnisend.OmnisendError, requests.RequestException) as error:
        raise ApiProblem("omnisend_unreachable", f"Omnisend at {settings.omnisend_api_url} did not answer as "
                         f"expected ({type(error).__name__}); retry later") from None
    finally:
        client.close()


def _forget_secret(store: Any, name: str) -> None:
    try:
        store.delete(name)
    except Exception:  # noqa: BLE001 - best effort; the original error is what the caller needs
        log.warning("secret %s could not be deleted after a failed save; delete it by hand", name)


@route("GET", "/connections", Access.MEMBER)
def list_connections(context: Context) -> ApiResponse:
    visible = [item for item in context.store.list_connections()
               if context.is_admin or item.usable_by_contributors]
    return json_response(200, {"connections": [item.to_api(full=context.is_admin) for item in visible]})


@route("GET", "/connections/{connectionId}", Access.MEMBER)
def get_connection(context: Context) -> ApiResponse:
    connection = _get_connection(context, context.params["connectionId"])
    require_usable(context, connection)
    return json_response(200, connection.to_api(full=context.is_admin))


@route("DELETE", "/connections/{connectionId}", Access.ADMIN)
def delete_connection(context: Context) -> ApiResponse:
    connection = _get_connection(context, context.params["connectionId"])
    users = context.store.list_exports(connection_id=connection.id)
    if users:
        raise ApiProblem("connection_in_use", f"{len(users)} export(s) use connection {connection.id!r}: delete "
                         "them or move them to another connection first",
                         extra={"exportIds": [item.id for item in users]})
    from ..keystore import SecretStoreError, secret_store

    # The secret goes first: if that fails nothing has changed and the DELETE can simply be retried.
    try:
        secret_store(context.settings).delete(connection.secret_name)
    except SecretStoreError as error:
        raise ApiProblem("secret_store_unavailable", f"the key could not be deleted: {error}") from None
    try:
        context.store.delete_connection(connection.id)
    except DocumentNotFoundError:
        pass  # deleted at the same time by someone else: the outcome the caller wants
    log.info("connection %s deleted by %s", connection.id, context.identity)
    return ApiResponse(204)
