"""Which connections and exports a caller may see and use.

Admins may use every connection; contributors only those an admin made usable by contributors, and
the exports on them. A run is judged by the connection it used (see `runs.py`).
"""
from __future__ import annotations

from ..documents import Connection, DocumentNotFoundError, Export
from ..problems import ApiProblem
from .routing import Context


def get_connection(context: Context, connection_id: str) -> Connection:
    try:
        return context.store.get_connection(connection_id)
    except DocumentNotFoundError:
        raise ApiProblem("connection_not_found", f"connection {connection_id!r} does not exist") from None


def require_usable(context: Context, connection: Connection) -> None:
    if not context.is_admin and not connection.usable_by_contributors:
        raise ApiProblem("connection_not_usable", f"connection {connection.id!r} is usable by admins only")


def get_export(context: Context, export_id: str) -> Export:
    """An export the caller may see: admins see all; contributors those on connections usable by them."""
    try:
        export = context.store.get_export(export_id)
    except DocumentNotFoundError:
        raise ApiProblem("export_not_found", f"export {export_id!r} does not exist") from None
    if not context.is_admin:
        try:
            connection = context.store.get_connection(export.connection_id)
        except DocumentNotFoundError:
            raise ApiProblem("forbidden", f"export {export_id!r} has no connection; only admins can use it") from None
        require_usable(context, connection)
    return export
