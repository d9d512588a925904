"""Secret stores: Key Vault through the real SecretClient against the HTTPS stand-in, and the local store."""
from __future__ import annotations

import logging
import stat
import uuid
from pathlib import Path

import pytest

from shared.keystore import (
    KeyVaultSecretStore,
    LocalSecretStore,
    SecretNotFoundError,
    SecretStoreError,
    secret_name_for,
    secret_store,
)
from shared.settings import Settings
from tools.azurite import free_port

SECRET = "omnisend-api-key-" + uuid.uuid4().hex  # distinctive, so a leak is easy to spot


def unique_name() -> str:
    return secret_name_for(uuid.uuid4().hex)


# --- Key Vault ----------------------------------------------------------------------------------


def test_key_vault_round_trip_goes_through_the_challenge(keyvault, tls_certificate):
    credential = keyvault.credential()
    store = KeyVaultSecretStore(
        keyvault.url, credential=credential, connection_verify=tls_certificate[0], verify_challenge_resource=False
    )
    name = unique_name()

    store.set(name, SECRET)

    assert store.get(name) == SECRET
    assert keyvault.secret_names() == [name]
    # The first request is refused with the challenge; the token is then asked for the vault's scope and tenant.
    assert keyvault.requests[0] == ("PUT", f"/secrets/{name}", 401)
    assert ("PUT", f"/secrets/{name}", 200) in keyvault.requests
    assert credential.requests[0] == (("https://vault.azure.net/.default",), keyvault.tenant_id)


def test_key_vault_set_again_returns_the_newest_version(keyvault_store):
    name = unique_name()
    keyvault_store.set(name, "first-" + SECRET)
    keyvault_store.set(name, SECRET)
    assert keyvault_store.get(name) == SECRET


def test_key_vault_missing_secret_raises_not_found_naming_it(keyvault_store):
    name = unique_name()
    with pytest.raises(SecretNotFoundError, match=name) as raised:
        keyvault_store.get(name)
    assert isinstance(raised.value, SecretStoreError)


def test_key_vault_delete_is_soft_and_the_name_is_not_reusable(keyvault, keyvault_store):
    name = unique_name()
    keyvault_store.set(name, SECRET)

    keyvault_store.delete(name)

    with pytest.raises(SecretNotFoundError):
        keyvault_store.get(name)
    assert keyvault.deleted_names() == [name]
    keyvault_store.delete(name)  # absent now: no error
    keyvault_store.delete(unique_name())  # never existed: no error
    # Purge protection: the deleted name stays reserved (callers use unique names).
    with pytest.raises(SecretStoreError, match="409") as raised:
        keyvault_store.set(name, SECRET)
    assert SECRET not in str(raised.value)


def test_key_vault_wrong_token_is_a_clear_error_without_the_value(keyvault, tls_certificate):
    from tools.keyvault_standin import FixedTokenCredential

    store = KeyVaultSecretStore(
        keyvault.url,
        credential=FixedTokenCredential("not-the-vault-token"),
        connection_verify=tls_certificate[0],
        verify_challenge_resource=False,
    )
    with pytest.raises(SecretStoreError, match="401") as raised:
        store.set(unique_name(), SECRET)
    assert SECRET not in str(raised.value)
    assert keyvault.secret_names() == []


def test_key_vault_unreachable_is_a_clear_error(tls_certificate):
    from tools.keyvault_standin import FixedTokenCredential

    url = f"https://127.0.0.1:{free_port()}"
    store = KeyVaultSecretStore(
        url, credential=FixedTokenCredential("t"), connection_verify=tls_certificate[0], retry_total=0
    )
    with pytest.raises(SecretStoreError, match="could not store secret") as raised:
        store.set(unique_name(), SECRET)
    assert url in str(raised.value) and SECRET not in str(raised.value)


def test_key_vault_store_never_logs_values_or_tokens(keyvault, keyvault_store, caplog):
    caplog.set_level(logging.DEBUG)
    name = unique_name()

    keyvault_store.set(name, SECRET)
    keyvault_store.get(name)
    keyvault_store.delete(name)
    with pytest.raises(SecretNotFoundError):
        keyvault_store.get(name)

    assert caplog.records, "azure-core logs requests at DEBUG/INFO: the check below must see them"
    assert SECRET not in caplog.text
    assert keyvault.token not in caplog.text
    assert SECRET not in repr(keyvault_store) and keyvault.token not in repr(keyvault.credential())


def test_key_vault_refuses_body_logging_and_plain_http():
    with pytest.raises(ValueError, match="logging_enable"):
        KeyVaultSecretStore("https://vault.example", credential=object(), logging_enable=True)
    with pytest.raises(ValueError, match="https://"):
        KeyVaultSecretStore("http://vault.example", credential=object())


# --- local store --------------------------------------------------------------------------------


def test_local_store_round_trip_with_private_files(tmp_path):
    store = LocalSecretStore(str(tmp_path / "secrets"))
    name = unique_name()

    store.set(name, SECRET)

    assert store.get(name) == SECRET
    assert stat.S_IMODE((tmp_path / "secrets" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == [name]  # no temporary file left
    store.set(name, "second")
    assert store.get(name) == "second"


def test_local_store_missing_and_delete(tmp_path):
    store = LocalSecretStore(str(tmp_path))
    name = unique_name()
    with pytest.raises(SecretNotFoundError, match=name):
        store.get(name)
    store.set(name, SECRET)
    store.delete(name)
    store.delete(name)  # absent: no error
    with pytest.raises(SecretNotFoundError):
        store.get(name)


def test_local_store_warns_once_per_folder_and_never_logs_values(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    store = LocalSecretStore(str(tmp_path))
    LocalSecretStore(str(tmp_path))
    store.set("omnisend-key-x", SECRET)
    store.get("omnisend-key-x")

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "shared.keystore"]
    assert len(warnings) == 1
    assert "not in Key Vault" in warnings[0].getMessage() and str(tmp_path) in warnings[0].getMessage()
    assert SECRET not in caplog.text and SECRET not in repr(store)


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "x" * 128, "with space", ".hidden"])
def test_local_store_rejects_names_key_vault_would_reject(tmp_path, name):
    store = LocalSecretStore(str(tmp_path))
    with pytest.raises(SecretStoreError, match="invalid secret name"):
        store.set(name, SECRET)
    assert list(tmp_path.iterdir()) == []


def test_local_store_refuses_a_folder_inside_the_project():
    inside = Path(__file__).resolve().parent.parent / ".local" / "secrets"
    with pytest.raises(ValueError, match="inside the project"):
        LocalSecretStore(str(inside))


def test_stores_refuse_empty_values(tmp_path):
    with pytest.raises(SecretStoreError, match="non-empty"):
        LocalSecretStore(str(tmp_path)).set("omnisend-key-x", "")


# --- choosing a store, naming secrets -------------------------------------------------------------


def test_secret_store_is_local_without_key_vault_url(tmp_path):
    store = secret_store(Settings.from_env({"LOCAL_SECRETS_DIR": str(tmp_path), "KEY_VAULT_URL": " "}))
    assert isinstance(store, LocalSecretStore) and store.directory == tmp_path.resolve()


def test_secret_store_is_key_vault_with_key_vault_url():
    store = secret_store(Settings.from_env({"KEY_VAULT_URL": "https://kv-example.vault.azure.net/"}))
    assert isinstance(store, KeyVaultSecretStore)
    assert store.vault_url == "https://kv-example.vault.azure.net"


def test_secret_name_for_connection_ids():
    assert secret_name_for("3f2a-01") == "omnisend-key-3f2a-01"
    assert secret_name_for("a" * 114) == "omnisend-key-" + "a" * 114
    for bad in ["a" * 115, "has_underscore", "", "a/b"]:
        with pytest.raises(ValueError, match="cannot name a Key Vault secret"):
            secret_name_for(bad)
