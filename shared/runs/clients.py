"""A run's connection and its Omnisend client: one pooled client per connection and process, whose
requests take their slots from the budget shared by every instance (BlobRateLimiter)."""
from __future__ import annotations

import hashlib
import threading
import time

from .. import documents, storage
from ..keystore import secret_store
from ..omnisend import OmnisendClient
from ..ratelimit import BlobRateLimiter, Budget
from ..settings import Settings
from .errors import RunFailure
from .model import Run

KEY_CACHE_SECONDS = 300.0

_clients: dict[str, tuple[str, float, OmnisendClient]] = {}
_lock = threading.Lock()


def connection_of(settings: Settings, run: Run) -> documents.Connection:
    try:
        return documents.DocumentStore(settings).get_connection(run.export.connection_id)
    except documents.DocumentNotFoundError as exc:
        raise RunFailure(f"connection {run.export.connection_id} no longer exists") from exc


def budgets(connection: documents.Connection) -> dict[str, Budget]:
    """The connection's rate budgets, by kind: what its limiter grants and what its batch board paces reads by."""
    return {"general": Budget(connection.requests_per_minute), "tags": Budget(connection.tag_requests_per_minute)}


def client_for(settings: Settings, connection: documents.Connection) -> OmnisendClient:
    """The connection's client; its key is read from the vault again every KEY_CACHE_SECONDS."""
    with _lock:
        cached = _clients.get(connection.id)
    if cached and time.monotonic() - cached[1] < KEY_CACHE_SECONDS:
        return cached[2]
    try:
        api_key = secret_store(settings).get(connection.secret_name)
    except Exception as exc:
        raise RunFailure(f"the API key of connection {connection.display_name!r} could not be read: {exc}") from exc
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()
    with _lock:
        cached = _clients.get(connection.id)
        if cached and cached[0] == fingerprint:
            _clients[connection.id] = (fingerprint, time.monotonic(), cached[2])
            return cached[2]
        limiter = BlobRateLimiter(
            storage.container(settings, settings.state_container),
            connection.id,
            budgets(connection),
        )
        client = OmnisendClient(api_key, limiter=limiter, base_url=settings.omnisend_api_url)
        if cached:
            cached[2].close()
        _clients[connection.id] = (fingerprint, time.monotonic(), client)
        return client
