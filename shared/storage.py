"""Clients for the storage account, built from settings: a connection string locally, identity in Azure."""
from __future__ import annotations

from functools import lru_cache

from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

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


@lru_cache(maxsize=8)
def blob_service(storage: StorageSettings) -> BlobServiceClient:
    if storage.connection_string:
        return BlobServiceClient.from_connection_string(storage.connection_string)
    return BlobServiceClient(_service_uri(storage, "blob"), credential=_credential(storage))


def container(settings: Settings, name: str) -> ContainerClient:
    return blob_service(settings.storage).get_container_client(name)


def queue(settings: Settings, name: str) -> QueueClient:
    """A queue client whose messages are base64, as the Functions queue trigger expects by default."""
    policies = dict(
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    if settings.storage.connection_string:
        return QueueClient.from_connection_string(settings.storage.connection_string, name, **policies)
    return QueueClient(
        _service_uri(settings.storage, "queue"), name, credential=_credential(settings.storage), **policies
    )
