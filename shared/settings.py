"""The one place that reads the app's settings (app settings in Azure, local.settings.json locally)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

DEFAULT_OMNISEND_API_URL = "https://api.omnisend.com/api"
DEFAULT_SCHEDULE = "0 0 2 * * *"

# Settings that only make sense on a developer's machine; the Azure templates never set them.
LOCAL_ONLY_SETTINGS = ("AzureWebJobsStorage", "LOCAL_SECRETS_DIR")
# Settings App Service sets by itself on every app; the templates never set them either.
PLATFORM_SETTINGS = ("WEBSITE_SITE_NAME", "WEBSITE_AUTH_ENABLED")


@dataclass(frozen=True)
class StorageSettings:
    """How to reach the storage account: a connection string (Azurite, local) or identity (Azure)."""

    connection_string: str | None = None
    account_name: str | None = None
    blob_service_uri: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return not self.connection_string

    def __repr__(self) -> str:  # a connection string may carry an account key
        return f"StorageSettings(account={self.account_name or 'connection string'})"


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    segments_container: str = "segments"
    state_container: str = "export-state"
    export_queue: str = "export-chunks"
    export_schedule: str = DEFAULT_SCHEDULE
    omnisend_api_url: str = DEFAULT_OMNISEND_API_URL
    key_vault_url: str | None = None
    azure_client_id: str | None = None
    local_secrets_dir: str = os.path.join(os.path.expanduser("~"), ".omnisend-export", "secrets")
    chunk_rows: int = 1000
    run_stall_minutes: int = 30  # a run without progress this long is re-driven by the watchdog
    run_max_hours: int = 6  # a run still going after this long is failed by the watchdog
    # In App Service the X-MS-CLIENT-PRINCIPAL header is trustworthy only while App Service
    # Authentication is on (it then strips the header from incoming requests); off Azure (dev host,
    # func start) there is no platform to forge past.
    trust_client_principal: bool = True
    # Where run telemetry goes (shared/telemetry.py); set in Azure only. A locator, not a credential:
    # ingestion takes the app identity's Entra token (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
    applicationinsights_connection_string: str | None = field(default=None, repr=False)

    @property
    def poison_queue(self) -> str:
        return f"{self.export_queue}-poison"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            return value.strip() if value and value.strip() else default

        storage = StorageSettings(
            connection_string=get("AzureWebJobsStorage"),
            account_name=get("AzureWebJobsStorage__accountName"),
            blob_service_uri=get("AzureWebJobsStorage__blobServiceUri"),
            queue_service_uri=get("AzureWebJobsStorage__queueServiceUri"),
            table_service_uri=get("AzureWebJobsStorage__tableServiceUri"),
            client_id=get("AzureWebJobsStorage__clientId") or get("AZURE_CLIENT_ID"),
        )

        def whole(name: str, text: str, low: int, high: int) -> int:
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"setting {name} must be a whole number, got {text!r}") from None
            if not low <= value <= high:
                raise ValueError(f"setting {name} must be between {low} and {high}, got {value}")
            return value

        rows = whole("CHUNK_ROWS", get("CHUNK_ROWS", "1000"), 100, 5000)
        stall_minutes = whole("RUN_STALL_MINUTES", get("RUN_STALL_MINUTES", "30"), 1, 1440)
        max_hours = whole("RUN_MAX_HOURS", get("RUN_MAX_HOURS", "6"), 1, 168)
        return cls(
            storage=storage,
            segments_container=get("SEGMENTS_CONTAINER", "segments"),
            state_container=get("STATE_CONTAINER", "export-state"),
            export_queue=get("EXPORT_QUEUE", "export-chunks"),
            export_schedule=get("EXPORT_SCHEDULE", DEFAULT_SCHEDULE),
            omnisend_api_url=get("OMNISEND_API_URL", DEFAULT_OMNISEND_API_URL).rstrip("/"),
            key_vault_url=get("KEY_VAULT_URL"),
            azure_client_id=get("AZURE_CLIENT_ID"),
            local_secrets_dir=get("LOCAL_SECRETS_DIR", cls.local_secrets_dir),
            chunk_rows=rows,
            run_stall_minutes=stall_minutes,
            run_max_hours=max_hours,
            trust_client_principal=get("WEBSITE_SITE_NAME") is None
            or (get("WEBSITE_AUTH_ENABLED") or "").lower() == "true",
            applicationinsights_connection_string=get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once (the host restarts the worker when settings change)."""
    return Settings.from_env()
