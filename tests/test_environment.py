"""HTTP settings of the environment, resolved once per client (shared/environment.py)."""
from __future__ import annotations

import requests
import urllib3

from shared import storage
from shared.environment import HttpEnvironment, http_environment
from shared.omnisend import OmnisendClient
from shared.ratelimit import SlidingWindowLimiter


def test_a_proxy_applies_unless_no_proxy_names_the_host(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/company-ca.pem")
    assert http_environment("https://api.omnisend.com/api").proxies == {"https": "http://proxy.example:3128"}
    assert http_environment("http://127.0.0.1:10000/devstoreaccount1").proxies == {}
    assert http_environment("https://api.omnisend.com/api").verify == "/etc/company-ca.pem"


def test_clients_stop_reading_the_environment_on_every_request(monkeypatch, settings):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = OmnisendClient("key", limiter=SlidingWindowLimiter(), base_url="https://api.omnisend.com/api")
    session = client._session
    assert not session.trust_env and session.proxies == {"https": "http://proxy.example:3128"}
    assert session.verify is True
    prepared = session.merge_environment_settings("https://api.omnisend.com/api", {}, None, None, None)
    assert prepared["proxies"] == {"https": "http://proxy.example:3128"}
    blob = storage.blob_service(settings.storage)
    assert blob._pipeline._transport._use_env_settings is False


def test_a_netrc_entry_never_replaces_a_request_s_credentials(monkeypatch, tmp_path):
    (tmp_path / ".netrc").write_text("machine api.omnisend.com login someone password secret\n")
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    session = http_environment("https://api.omnisend.com/api").apply(requests.Session())
    prepared = session.prepare_request(requests.Request("GET", "https://api.omnisend.com/api/contacts"))
    assert "Authorization" not in prepared.headers
    trusting = requests.Session()  # what a session that reads the environment would send
    assert "Authorization" in trusting.prepare_request(
        requests.Request("GET", "https://api.omnisend.com/api/contacts")).headers


def test_a_urllib3_pool_takes_the_same_proxy_and_ca_bundle():
    proxied = HttpEnvironment({"https": "http://proxy.example:3128"}, "/etc/ca.pem").pool("https", 4)
    assert isinstance(proxied, urllib3.ProxyManager) and proxied.proxy.host == "proxy.example"
    assert proxied.connection_pool_kw["ca_certs"] == "/etc/ca.pem"
    direct = HttpEnvironment({"https": "http://proxy.example:3128"}, False).pool("http", 4)
    assert not isinstance(direct, urllib3.ProxyManager) and direct.connection_pool_kw["cert_reqs"] == "CERT_NONE"
    assert direct.connection_pool_kw["maxsize"] == 4
