"""Clients for the storage account, built from settings: a connection string locally, identity in Azure."""
from __future__ import annotations

from functools import lru_cache

from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.blob import ExponentialRetry as BlobRetry
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient
from azure.storage.queue import ExponentialRetry as QueueRetry

from .environment import http_environment
from .settings import Settings, StorageSettings


# The SDK's own retry waits 15-21 s before its first retry. One failure it retries is a keep-alive
# connection the service closed as a request went out, which a new connection serves at once: an API
# call or a chunk stalled that long for nothing. Here the three retries wait 1-3 s, 3-5 s and 7-9 s
# (initial_backoff + increment_base ** retry, give or take random_jitter_range); what outlasts them
# fails the call as before.
RETRY = {"initial_backoff": 0, "increment_base": 2, "random_jitter_range": 1, "retry_total": 3}


def _credential(storage: StorageSettings):
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=storage.client_id)


def _service_uri(storage: StorageSettings, service: str) -> str:
    explicit = getattr(storage, f"{service}_service_uri")
    if explicit:
        return explicit
    if not storage.account_name:
        raise ValueError(
            "storage is not configured: set AzureWebJobsStorage (connection string) or "
            "AzureWebJobsStorage__accountName (identity-based)"
        )
    return f"https://{storage.account_name}.{service}.core.windows.net"


def _options(uri: str, retry_class) -> dict:
    """Constructor options of a client for `uri`: the environment's HTTP settings and the retry above."""
    return {**http_environment(uri).sdk_options(), "retry_policy": retry_class(**RETRY)}


def _from_connection_string(client_class, retry_class, connection_string: str, *args, **kwargs):
    """A client of `connection_string` with the options for its endpoint, which the connection string
    names (the SDK parses it: a first client, never used, tells the URL)."""
    url = client_class.from_connection_string(connection_string, *args, **kwargs).url
    return client_class.from_connection_string(connection_string, *args, **kwargs, **_options(url, retry_class))


@lru_cache(maxsize=8)
def blob_service(storage: StorageSettings) -> BlobServiceClient:
    if storage.connection_string:
        return _from_connection_string(BlobServiceClient, BlobRetry, storage.connection_string)
    uri = _service_uri(storage, "blob")
    return BlobServiceClient(uri, credential=_credential(storage), **_options(uri, BlobRetry))


@lru_cache(maxsize=32)
def _container(storage: StorageSettings, name: str) -> ContainerClient:
    return blob_service(storage).get_container_client(name)


def container(settings: Settings, name: str) -> ContainerClient:
    """The container's client, one per storage account and name (SDK clients are thread-safe), so the
    clients built from it can be kept too (`segments.blobs` keeps one per partition blob)."""
    return _container(settings.storage, name)


def queue(settings: Settings, name: str, *, base64: bool = True) -> QueueClient:
    """A queue client whose messages are base64, as the Functions queue trigger expects by default
    (`base64=False`: message text as stored, for a host that hands it to the trigger itself)."""
    policies = dict(
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    ) if base64 else {}
    if settings.storage.connection_string:
        return _from_connection_string(QueueClient, QueueRetry, settings.storage.connection_string, name, **policies)
    uri = _service_uri(settings.storage, "queue")
    return QueueClient(uri, name, credential=_credential(settings.storage), **policies, **_options(uri, QueueRetry))
