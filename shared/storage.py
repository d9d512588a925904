"""Clients for the storage account, built from settings: a connection string locally, identity in Azure."""
from __future__ import annotations

from functools import lru_cache

from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

from .environment import http_environment
from .settings import Settings, StorageSettings


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


def _from_connection_string(client_class, connection_string: str, *args, **kwargs):
    """A client of `connection_string` with the environment's HTTP settings for its endpoint, which
    the connection string names (the SDK parses it: a first client, never used, tells the URL)."""
    url = client_class.from_connection_string(connection_string, *args, **kwargs).url
    return client_class.from_connection_string(connection_string, *args, **kwargs,
                                               **http_environment(url).sdk_options())


@lru_cache(maxsize=8)
def blob_service(storage: StorageSettings) -> BlobServiceClient:
    if storage.connection_string:
        return _from_connection_string(BlobServiceClient, storage.connection_string)
    uri = _service_uri(storage, "blob")
    return BlobServiceClient(uri, credential=_credential(storage), **http_environment(uri).sdk_options())


def container(settings: Settings, name: str) -> ContainerClient:
    return blob_service(settings.storage).get_container_client(name)


def queue(settings: Settings, name: str) -> QueueClient:
    """A queue client whose messages are base64, as the Functions queue trigger expects by default."""
    policies = dict(
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    if settings.storage.connection_string:
        return _from_connection_string(QueueClient, settings.storage.connection_string, name, **policies)
    uri = _service_uri(settings.storage, "queue")
    return QueueClient(uri, name, credential=_credential(settings.storage), **policies,
                       **http_environment(uri).sdk_options())
