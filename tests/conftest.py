"""Fixtures shared by the whole suite. Real parts only: Azurite for storage, the sandbox for Omnisend."""
from __future__ import annotations

import os
import uuid

import pytest

from shared.settings import Settings
from tools.azurite import Azurite, start_azurite


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
    from shared.keystore import KeyVaultSecretStore

    return KeyVaultSecretStore(
        keyvault.url,
        credential=keyvault.credential(),
        connection_verify=tls_certificate[0],
        verify_challenge_resource=False,
    )


# --- HTTP API (shared/api.py): callers by role, and the OpenAPI document as a contract --------------

API_IDENTITIES = {"admin": "admin@contoso.com", "contributor": "contributor@contoso.com", "norole": "guest@contoso.com"}


class ApiCaller:
    """Calls `shared.api.handle` in-process as a given role: "admin", "contributor", "norole" or None."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, method: str, path: str, *, role: str | None = "admin", json_body=None,
                 body: bytes | None = None, headers: dict[str, str] | None = None,
                 query: dict[str, str] | None = None):
        import json

        from shared.api import ApiRequest, handle
        from shared.auth import ADMIN_ROLE, CONTRIBUTOR_ROLE, encode_principal

        all_headers = {}
        if role is not None:
            roles = {"admin": [ADMIN_ROLE], "contributor": [CONTRIBUTOR_ROLE], "norole": []}[role]
            all_headers["X-MS-CLIENT-PRINCIPAL"] = encode_principal(API_IDENTITIES[role], roles)
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        request = ApiRequest(method, path.removeprefix("/api/").lstrip("/"), all_headers, query or {}, body or b"")
        return handle(self.settings, request)


@pytest.fixture()
def api_settings(settings) -> Settings:
    """Settings the `api` fixture runs with; a test module overrides it to add e.g. the Omnisend sandbox."""
    return settings


@pytest.fixture()
def api(api_settings) -> ApiCaller:
    return ApiCaller(api_settings)


class OpenApiContract:
    """openapi/exports-api.json, for checking real responses against what it documents."""

    def __init__(self, document: dict) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.document = document
        resource = Resource(contents=_nullable_to_json_schema(document), specification=DRAFT202012)
        self._registry = Registry().with_resource("urn:exports-api", resource)
        self._validator_class = Draft202012Validator

    def operation(self, method: str, template: str) -> dict:
        return self.document["paths"][template][method.lower()]

    def errors(self, schema: dict, instance) -> list[str]:
        """Messages of `instance` not matching `schema` (which may $ref into the document)."""
        schema = _nullable_to_json_schema(schema)
        if "$ref" in schema:
            schema = {"$ref": "urn:exports-api" + schema["$ref"]}
        validator = self._validator_class(schema, registry=self._registry)
        return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(instance)]

    def check(self, response, method: str, template: str) -> None:
        """Fail unless the status is documented for the route and the body matches its schema."""
        import json

        responses = self.operation(method, template)["responses"]
        assert str(response.status) in responses, f"{method} {template} answered undocumented {response.status}"
        documented = responses[str(response.status)]
        if "$ref" in documented:
            documented = self.document["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
        content = documented.get("content")
        if not content:
            assert response.body == b"", f"{method} {template} {response.status} must have no body"
            return
        media_type = response.headers["Content-Type"].split(";")[0]
        assert media_type in content, f"{method} {template} {response.status} answered {media_type}"
        if media_type.endswith("json"):
            problems = self.errors(content[media_type]["schema"], json.loads(response.body))
            assert not problems, f"{method} {template} {response.status}: {problems}"


def _nullable_to_json_schema(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema (`anyOf` with null), recursively."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") is True else converted


@pytest.fixture(scope="session")
def exports_api_contract() -> OpenApiContract:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "openapi" / "exports-api.json"
    return OpenApiContract(json.loads(path.read_text(encoding="utf-8")))


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


# --- HTTP API: stored connections and segments to build requests on ---------------------------------


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


@pytest.fixture()
def api_segments(segments_container):
    """Two small plain-CSV segments, "Vip" and "Newsletter", written with tools/sample_export.py:
    {name: profiles}. Map them with tools.sample_export.DEFAULT_MAPPING."""
    from tools.sample_export import generate_profiles, write_plain_segment

    written = {"Vip": generate_profiles(5, seed=1), "Newsletter": generate_profiles(5, seed=2)}
    for name, profiles in written.items():
        write_plain_segment(segments_container, name, profiles)
    return written


# --- Segments (shared/segments.py) and the sample export generator (tools/sample_export.py) -------


@pytest.fixture()
def ci_export(segments_container):
    """Writes a Customer Insights export into the segments container:
    ci_export({"HighValue": generate_profiles(30)}, partitions=2, when=datetime(...)) -> blobs written
    (partitions, then model.json). Keyword arguments go to tools.sample_export.write_ci_export."""
    from tools.sample_export import write_ci_export

    def write(segments: dict, **options) -> list[str]:
        return write_ci_export(segments_container, segments, **options)

    return write
