"""Fixtures shared by the whole suite. Real parts only: Azurite for storage, the sandbox for Omnisend."""
from __future__ import annotations

import uuid

import pytest

from shared.settings import Settings
from tools.azurite import Azurite, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Azurite:
    """One Azurite for the session (started here, stopped at the end), data in .azurite/tests."""
    emulator = start_azurite("tests")
    yield emulator
    emulator.stop()


@pytest.fixture()
def settings(azurite, tmp_path) -> Settings:
    """Settings of a fresh, isolated app: own containers and queue names, local secrets in tmp."""
    suffix = uuid.uuid4().hex[:10]
    return Settings.from_env(
        {
            "AzureWebJobsStorage": azurite.connection_string,
            "SEGMENTS_CONTAINER": f"segments-{suffix}",
            "STATE_CONTAINER": f"state-{suffix}",
            "EXPORT_QUEUE": f"chunks-{suffix}",
            "LOCAL_SECRETS_DIR": str(tmp_path / "secrets"),
        }
    )


@pytest.fixture()
def segments_container(settings):
    """The (created) segments container of the `settings` fixture."""
    from shared.storage import container

    client = container(settings, settings.segments_container)
    client.create_container()
    return client


# --- Key Vault stand-in (HTTPS, challenge auth) for the real SecretClient -------------------------


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1/localhost: (certificate PEM path, key PEM path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture()
def keyvault(tls_certificate):
    """A fresh, started Key Vault stand-in (tools/keyvault_standin.py) on 127.0.0.1 over HTTPS."""
    from tools.keyvault_standin import KeyVaultStandIn

    standin = KeyVaultStandIn(*tls_certificate).start()
    yield standin
    standin.stop()


@pytest.fixture()
def keyvault_store(keyvault, tls_certificate):
    """A KeyVaultSecretStore talking to the `keyvault` stand-in through the real SecretClient."""
    from shared.secrets import KeyVaultSecretStore

    return KeyVaultSecretStore(
        keyvault.url,
        credential=keyvault.credential(),
        connection_verify=tls_certificate[0],
        verify_challenge_resource=False,
    )
