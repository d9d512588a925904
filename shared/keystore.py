"""Where Omnisend API keys live: Azure Key Vault in every real deployment, a local folder on a laptop.

Only the secret *name* is ever stored next to a connection; the value stays in the store. Nothing
in this module puts a secret value into a log record, an exception message or a repr.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

from .settings import Settings

log = logging.getLogger(__name__)

# Key Vault secret names: letters, digits and dashes, 1..127 characters.
SECRET_NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
SECRET_NAME_PREFIX = "omnisend-key-"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SecretStoreError(Exception):
    """A secret store operation failed. The message names the secret, never its value."""


class SecretNotFoundError(SecretStoreError):
    """The store has no (enabled) secret of that name."""


class SecretStore(Protocol):
    def set(self, name: str, value: str) -> None: ...

    def get(self, name: str) -> str: ...

    def delete(self, name: str) -> None: ...


def secret_name_for(connection_id: str) -> str:
    """The secret name holding the API key of a connection: `omnisend-key-<id>`."""
    name = f"{SECRET_NAME_PREFIX}{connection_id}"
    if not connection_id or not SECRET_NAME_PATTERN.match(name):
        raise ValueError(
            f"connection id {connection_id!r} cannot name a Key Vault secret: use letters, digits and "
            f"dashes only, at most {127 - len(SECRET_NAME_PREFIX)} characters"
        )
    return name


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not SECRET_NAME_PATTERN.match(name):
        raise SecretStoreError(
            f"invalid secret name {name!r}: Key Vault names are 1-127 letters, digits or dashes"
        )


def _check_value(name: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise SecretStoreError(f"secret {name!r}: the value must be a non-empty string")


def _redact(text: str, value: str | None) -> str:
    return text.replace(value, "***") if value else text


class KeyVaultSecretStore:
    """Secrets in Azure Key Vault through `SecretClient`.

    Soft delete and purge protection are on in the deployed vault, so a deleted name stays
    reserved until its retention ends: callers must use a fresh name per secret (connection ids
    are unique, so `secret_name_for` gives that).
    """

    def __init__(
        self,
        vault_url: str,
        credential: Any = None,
        *,
        managed_identity_client_id: str | None = None,
        **client_kwargs: Any,
    ) -> None:
        from azure.keyvault.secrets import SecretClient

        if not vault_url or not vault_url.lower().startswith("https://"):
            raise ValueError(f"KEY_VAULT_URL must be an https:// vault URL, got {vault_url!r}")
        if client_kwargs.get("logging_enable"):
            # azure-core's body logging would write the secret value into the log.
            raise ValueError("logging_enable=True would log secret values; it is not allowed here")
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=managed_identity_client_id)
        self.vault_url = vault_url.rstrip("/")
        self._client = SecretClient(vault_url=self.vault_url, credential=credential, **client_kwargs)

    def __repr__(self) -> str:
        return f"KeyVaultSecretStore(vault_url={self.vault_url!r})"

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        _check_value(name, value)
        try:
            self._client.set_secret(name, value, content_type="text/plain")
        except Exception as error:  # noqa: BLE001 - every SDK failure becomes one clear error type
            raise self._error("store", name, error, value) from None

    def get(self, name: str) -> str:
        from azure.core.exceptions import ResourceNotFoundError

        _check_name(name)
        try:
            secret = self._client.get_secret(name)
        except ResourceNotFoundError:
            raise SecretNotFoundError(f"secret {name!r} does not exist in {self.vault_url}") from None
        except Exception as error:  # noqa: BLE001
            raise self._error("read", name, error) from None
        if secret.value is None:
            raise SecretNotFoundError(f"secret {name!r} in {self.vault_url} has no value")
        return secret.value

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        _check_name(name)
        try:
            poller = self._client.begin_delete_secret(name)
        except ResourceNotFoundError:
            return
        except Exception as error:  # noqa: BLE001
            raise self._error("delete", name, error) from None
        # The name reads as absent once the vault has moved it to its deleted collection.
        try:
            poller.wait(timeout=60)
        except Exception as error:  # noqa: BLE001
            raise self._error("confirm deletion of", name, error) from None

    def _error(self, action: str, name: str, error: Exception, value: str | None = None) -> SecretStoreError:
        # SDK messages carry the service's error text, never request bodies; redact anyway.
        status = getattr(error, "status_code", None)
        code = getattr(getattr(error, "error", None), "code", None)
        reason = getattr(getattr(error, "error", None), "message", None) or (str(error).splitlines() or [""])[0]
        detail = ", ".join(
            part for part in (f"HTTP {status}" if status else "", code or "", _redact(reason, value)) if part
        )
        return SecretStoreError(
            f"could not {action} secret {name!r} in {self.vault_url}: {type(error).__name__}: {detail}"
        )


class LocalSecretStore:
    """Local development only: one file per secret, mode 0600, in a 0700 folder outside the repo."""

    _warned: set[str] = set()
    _warned_lock = threading.Lock()

    def __init__(self, directory: str) -> None:
        path = Path(directory).expanduser().resolve()
        if path == PROJECT_ROOT or PROJECT_ROOT in path.parents:
            raise ValueError(
                f"LOCAL_SECRETS_DIR {str(path)!r} is inside the project: keys could end up in git; "
                "choose a folder outside it"
            )
        self.directory = path
        with self._warned_lock:
            if str(path) not in self._warned:
                self._warned.add(str(path))
                log.warning(
                    "KEY_VAULT_URL is not set: API keys are stored in local files under %s, not in Key "
                    "Vault. Use this for local development only.",
                    path,
                )

    def __repr__(self) -> str:
        return f"LocalSecretStore(directory={str(self.directory)!r})"

    def _path(self, name: str) -> Path:
        _check_name(name)
        return self.directory / name

    def set(self, name: str, value: str) -> None:
        path = self._path(name)
        _check_value(name, value)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Write a private temporary file, then rename: readers never see a partial key.
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.")
            try:
                os.fchmod(handle, 0o600)
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    file.write(value)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise SecretStoreError(f"could not store secret {name!r} in {self.directory}: {error.strerror}") from None

    def get(self, name: str) -> str:
        path = self._path(name)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SecretNotFoundError(f"secret {name!r} does not exist in {self.directory}") from None
        except OSError as error:
            raise SecretStoreError(f"could not read secret {name!r} in {self.directory}: {error.strerror}") from None

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise SecretStoreError(f"could not delete secret {name!r} in {self.directory}: {error.strerror}") from None


def secret_store(settings: Settings) -> SecretStore:
    """Key Vault when KEY_VAULT_URL is set (always in Azure), else the local folder store."""
    if settings.key_vault_url:
        return KeyVaultSecretStore(settings.key_vault_url, managed_identity_client_id=settings.azure_client_id)
    return LocalSecretStore(settings.local_secrets_dir)
