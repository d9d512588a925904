"""The HTTP settings a process inherits from its environment (proxies, a CA bundle), read once per
client instead of on every request.

`requests` re-reads them for every call of a session that trusts the environment: the proxy
variables, and ~/.netrc on disk (two stat calls, more than the rest of a request's preparation on
a busy worker). A client talks to one host, so its settings are resolved once, for its base URL
(NO_PROXY included), and its session stops looking. ~/.netrc is not honoured: every request this
app makes carries its own credentials, which a netrc entry must not replace.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import requests
import urllib3


@dataclass(frozen=True)
class HttpEnvironment:
    proxies: dict[str, str] = field(default_factory=dict)  # scheme -> proxy URL, empty when none applies
    verify: bool | str = True  # a CA bundle path from REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, else True

    def apply(self, session: requests.Session) -> requests.Session:
        """`session` with these settings, no longer reading the environment on every request."""
        session.trust_env = False
        session.proxies.update(self.proxies)
        session.verify = self.verify
        return session

    def pool(self, scheme: str, maxsize: int) -> urllib3.PoolManager:
        """The same for a urllib3 pool of requests by `scheme` (a proxy manager when a proxy applies)."""
        tls = ({"cert_reqs": "CERT_NONE"} if self.verify is False
               else {"ca_certs": self.verify} if isinstance(self.verify, str) else {})
        proxy = self.proxies.get(scheme)
        if proxy:
            return urllib3.ProxyManager(proxy, maxsize=maxsize, **tls)
        return urllib3.PoolManager(maxsize=maxsize, **tls)

    def sdk_options(self) -> dict:
        """The same for an Azure SDK client (keyword arguments of its constructor)."""
        options: dict = {"use_env_settings": False, "connection_verify": self.verify}
        if self.proxies:
            options["proxies"] = dict(self.proxies)
        return options


def http_environment(url: str) -> HttpEnvironment:
    """The environment's settings for requests to `url`."""
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    proxies = {scheme: proxy for scheme, proxy in requests.utils.get_environ_proxies(url).items() if scheme != "no"}
    return HttpEnvironment(proxies, verify)
