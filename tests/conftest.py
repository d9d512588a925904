"""Fixtures shared by the whole suite. Real parts only: Azurite for storage, the sandbox for Omnisend."""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

from shared.settings import Settings
from shared.telemetry import NOISY_SDK_LOGGERS
from tools.azurite import Azurite, start_azurite

# function_app.py sets the Azure SDK loggers to WARNING when it is imported, for the whole process. Tests
# that check what reaches the logs (no key, no token) must still see the SDK's lines, whichever test
# imported the app before them: after every test, these loggers go back to their levels at the start.
_SDK_LOG_LEVELS = {name: logging.getLogger(name).level for name in NOISY_SDK_LOGGERS}


@pytest.fixture(autouse=True)
def sdk_log_levels_as_at_start():
    yield
    for name, level in _SDK_LOG_LEVELS.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="session")
def azurite() -> Azurite:
    """One Azurite for the session (started here, stopped and removed at the end), data in
    .azurite/tests-<pid> so that concurrent sessions do not share a folder."""
    emulator = start_azurite(f"tests-{os.getpid()}")
    yield emulator
    emulator.stop(remove_data=True)


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


@contextmanager
def hosted_app(azurite, secrets_dir, *, workers: int) -> Iterator[tuple]:
    """The app in a dev host, as `func start` would run it, against Azurite and an Omnisend sandbox:
    its own containers and queue, the sandbox as Omnisend with no rate limit in the way. Yields
    (dev host, sandbox, segments container); afterwards checks that the sandbox saw only requests
    and answers the contract allows."""
    from shared.settings import get_settings
    from shared.storage import container
    from tools.devhost import DevHost
    from tools.omnisend_sandbox import OmnisendSandbox

    fast = 100_000  # requests per minute: the budget is not what these tests are about
    suffix = uuid.uuid4().hex[:8]
    patch = pytest.MonkeyPatch()
    for name, value in {
        "AzureWebJobsStorage": azurite.connection_string,
        "SEGMENTS_CONTAINER": f"segments-{suffix}",
        "STATE_CONTAINER": f"state-{suffix}",
        "EXPORT_QUEUE": f"chunks-{suffix}",
        "LOCAL_SECRETS_DIR": str(secrets_dir),
        "EXPORT_SCHEDULE": "0 0 2 * * *",
        "KEY_VAULT_URL": "",
    }.items():
        patch.setenv(name, value)
    sandbox = OmnisendSandbox(requests_per_minute=fast, tag_requests_per_minute=fast, batch_step_seconds=0.002).start()
    patch.setenv("OMNISEND_API_URL", sandbox.url)
    get_settings.cache_clear()
    settings = get_settings()
    segments = container(settings, settings.segments_container)
    segments.create_container()
    host = DevHost(port=0, workers=workers).start()
    try:
        yield host, sandbox, segments
    finally:
        host.stop()
        sandbox.stop()
        patch.undo()
        get_settings.cache_clear()
    violations = sandbox.contract_violations()
    assert not violations, violations[:10]


@pytest.fixture()
def segments_container(settings):
    """The (created) segments container of the `settings` fixture."""
    from shared.storage import container

    client = container(settings, settings.segments_container)
    client.create_container()
    return client


# --- bytes on the wire to Azurite's blob service -------------------------------------------------


class BlobTraffic:
    """A TCP forwarder on loopback in front of Azurite's blob port that counts the bytes each way:
    whoever uses `connection_string` reaches the same Azurite, and a test sees how much was read.
    `drops = n` closes the next n connections unanswered."""

    def __init__(self, azurite) -> None:
        self._azurite = azurite
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.downloaded = 0  # bytes Azurite sent to clients
        self.uploaded = 0
        self.drops = 0  # connections still to close unanswered, as a service closes an idle keep-alive one

    @property
    def connection_string(self) -> str:
        port = self._listener.getsockname()[1]
        return self._azurite.connection_string.replace(f":{self._azurite.blob_port}/", f":{port}/")

    def reset(self) -> None:
        with self._lock:
            self.downloaded = self.uploaded = 0

    def start(self) -> "BlobTraffic":
        threading.Thread(target=self._accept, name="blob-traffic", daemon=True).start()
        return self

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                drop, self.drops = self.drops > 0, max(self.drops - 1, 0)
            if drop:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self._azurite.blob_port))
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, "uploaded"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "downloaded"), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, counter: str) -> None:
        try:
            while chunk := source.recv(65536):
                with self._lock:
                    setattr(self, counter, getattr(self, counter) + len(chunk))
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture()
def blob_traffic(azurite) -> BlobTraffic:
    """Counts the bytes between its users (`.connection_string`) and Azurite's blob service."""
    traffic = BlobTraffic(azurite).start()
    yield traffic
    traffic.stop()


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
    from shared.keystore import KeyVaultSecretStore

    return KeyVaultSecretStore(
        keyvault.url,
        credential=keyvault.credential(),
        connection_verify=tls_certificate[0],
        verify_challenge_resource=False,
    )


# --- HTTP API: the callers' identities, and the connections they use ------------------------------

API_IDENTITIES = {"admin": "admin@contoso.com", "contributor": "contributor@contoso.com", "norole": "guest@contoso.com"}


@pytest.fixture()
def api_settings(settings) -> Settings:
    """Settings `api_connection` (and the API tests) run with; tests/api and the run tests override it to
    add the Omnisend sandbox."""
    return settings


# --- Omnisend sandbox ------------------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sandbox(**options): OmnisendSandbox options for the `sandbox` fixture, e.g. window_seconds=2.0"
    )


@pytest.fixture()
def sandbox(request):
    """A started Omnisend sandbox on its own port, stopped after the test.

    Fast rate-limit windows are opt-in: @pytest.mark.sandbox(window_seconds=2.0, requests_per_minute=10).
    After the test, every response it gave and every request it accepted must match the contract.
    """
    from tools.omnisend_sandbox import OmnisendSandbox

    marker = request.node.get_closest_marker("sandbox")
    server = OmnisendSandbox(**(marker.kwargs if marker else {})).start()
    yield server
    server.stop()
    violations = server.contract_violations()
    if violations:
        pytest.fail("Omnisend contract violated:\n" + "\n".join(violations[:20]), pytrace=False)


@pytest.fixture()
def omnisend_key(sandbox) -> str:
    """An API key of brand1 on the `sandbox`, with every scope."""
    return sandbox.add_key("brand1")


@pytest.fixture()
def omnisend_client(sandbox, omnisend_key):
    """A client of the `sandbox` with short timeouts and backoff, closed after the test."""
    from shared.omnisend import OmnisendClient
    from shared.ratelimit import SlidingWindowLimiter

    client = OmnisendClient(omnisend_key, limiter=SlidingWindowLimiter(), base_url=sandbox.url, timeout=2.0,
                            backoff_seconds=0.01)
    yield client
    client.close()


@pytest.fixture()
def sandbox_api(sandbox, omnisend_key):
    """Raw HTTP to the sandbox, for probing what the client never sends: call(method, path, **options)."""
    import requests

    from shared.omnisend import API_VERSION

    session = requests.Session()

    def call(method, path, *, key=omnisend_key, version=API_VERSION, json=None, params=None, data=None):
        headers = {}
        if key is not None:
            headers["Authorization"] = f"Omnisend-API-Key {key}"
        if version is not None:
            headers["Omnisend-Version"] = version
        return session.request(method, sandbox.url + path, headers=headers, json=json, params=params, data=data,
                               timeout=5)

    yield call
    session.close()


# --- HTTP API: stored connections to build requests and runs on --------------------------------------


@pytest.fixture()
def api_connection(api_settings):
    """Stores a connection (document + its key in the local secret store), as POST /connections would:
    api_connection(usable_by="admins" | "adminsAndContributors", api_key="brand1-...") -> Connection."""
    from shared.documents import Connection, DocumentStore, new_id, utc_now
    from shared.keystore import secret_name_for, secret_store

    def make(usable_by: str = "admins", api_key: str = "brand1-0123456789abcdef", **changes) -> Connection:
        connection_id, now = new_id(), utc_now()
        connection = Connection(
            id=connection_id, display_name=f"Shop {usable_by}", secret_name=secret_name_for(connection_id),
            export_user=API_IDENTITIES["admin"], consent_at=now, created_at=now, created_by=API_IDENTITIES["admin"],
            usable_by=usable_by, **changes,
        )
        secret_store(api_settings).set(connection.secret_name, api_key)
        DocumentStore(api_settings).put_connection(connection)
        return connection

    return make


# --- Segments (shared/segments/) and the sample export generator (tools/sample_export.py) -------


@pytest.fixture()
def ci_export(segments_container):
    """Writes a Customer Insights export into the segments container:
    ci_export({"HighValue": generate_profiles(30)}, partitions=2, when=datetime(...)) -> blobs written
    (partitions, then model.json). Keyword arguments go to tools.sample_export.write_ci_export."""
    from tools.sample_export import write_ci_export

    def write(segments: dict, **options) -> list[str]:
        return write_ci_export(segments_container, segments, **options)

    return write
