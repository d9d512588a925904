"""shared/console.py: the console's static files, and how the app routes / beside /api under the dev host."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import requests

from shared.console import CONSOLE_DIR, SECURITY_HEADERS, serve
from shared.settings import get_settings
from tools.devhost import DevHost

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def folder(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>x</title>")
    (tmp_path / "app.js").write_text("export const x = 1;")
    (tmp_path / "styles.css").write_text("body {}")
    (tmp_path / "notes.md").write_text("not served: unknown type")
    (tmp_path / ".hidden.js").write_text("secret")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.js").write_text("nested")
    (tmp_path.parent / "outside.js").write_text("outside")
    return tmp_path


@pytest.mark.parametrize("name, content_type", [
    ("", "text/html; charset=utf-8"), ("index.html", "text/html; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"), ("styles.css", "text/css; charset=utf-8"),
])
def test_files_are_served_with_their_content_type_and_caching_headers(folder, name, content_type):
    answer = serve(name, root=folder)
    assert answer.status == 200
    assert answer.body == (folder / (name or "index.html")).read_bytes()
    assert answer.headers["Content-Type"] == content_type
    assert answer.headers["Cache-Control"] == "no-cache"
    assert answer.headers["ETag"].startswith('"') and len(answer.headers["ETag"]) == 34
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]


def test_an_unchanged_file_answers_304_and_a_changed_one_200(folder):
    etag = serve("app.js", root=folder).headers["ETag"]
    assert serve("app.js", if_none_match=etag, root=folder).status == 304
    assert serve("app.js", if_none_match=f'"other", W/{etag}', root=folder).status == 304
    (folder / "app.js").write_text("export const x = 2;")
    changed = serve("app.js", if_none_match=etag, root=folder)
    assert changed.status == 200 and changed.headers["ETag"] != etag


@pytest.mark.parametrize("name", [
    "..", "../outside.js", "..%2Foutside.js", "sub/inner.js", "sub", "/etc/passwd", "..\\outside.js",
    ".hidden.js", "notes.md", "missing.js", "app.js/", "app.js\x00.css", "app..js", "%2e%2e",
])
def test_nothing_outside_plain_known_files_of_the_folder_is_served(folder, name):
    answer = serve(name, root=folder)
    assert answer.status == 404, name
    assert answer.body == b"Not found.\n"
    assert answer.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]


def test_only_get_and_head(folder):
    assert serve("app.js", "HEAD", root=folder).status == 200
    refused = serve("app.js", "POST", root=folder)
    assert refused.status == 405 and refused.headers["Allow"] == "GET, HEAD"


def test_every_file_of_the_console_has_a_served_type():
    names = sorted(path.name for path in CONSOLE_DIR.iterdir())
    assert "index.html" in names
    assert [name for name in names if serve(name).status != 200] == []


def test_host_json_serves_the_app_at_the_root_and_the_api_under_api():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""


# --- through the dev host: / is the console, /api/... is the API, the host's own routes still answer ---


@pytest.fixture(scope="module")
def host(azurite, tmp_path_factory):
    suffix = uuid.uuid4().hex[:8]
    patch = pytest.MonkeyPatch()
    for name, value in {
        "AzureWebJobsStorage": azurite.connection_string, "SEGMENTS_CONTAINER": f"segments-{suffix}",
        "STATE_CONTAINER": f"state-{suffix}", "EXPORT_QUEUE": f"chunks-{suffix}", "KEY_VAULT_URL": "",
        "LOCAL_SECRETS_DIR": str(tmp_path_factory.mktemp("secrets")), "EXPORT_SCHEDULE": "0 0 2 * * *",
    }.items():
        patch.setenv(name, value)
    get_settings.cache_clear()
    with DevHost(port=0, workers=1) as running:
        yield running
    patch.undo()
    get_settings.cache_clear()


def test_the_root_serves_the_console_and_its_assets(host):
    page = requests.get(f"{host.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="app.js">' in page.content
    script = requests.get(f"{host.url}/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    again = requests.get(f"{host.url}/app.js", headers={"If-None-Match": script.headers["ETag"]}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    assert requests.get(f"{host.url}/..%2Fhost.json", timeout=10).status_code == 404
    assert requests.get(f"{host.url}/shared/console.py", timeout=10).status_code == 404


def test_the_api_stays_under_api(host):
    health = requests.get(f"{host.url}/api/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert requests.get(f"{host.url}/api/exports", timeout=10).json() == {"exports": []}
    missing = requests.get(f"{host.url}/api/nothing-here", timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "route_not_found"
    assert requests.get(f"{host.url}/api/openapi.json", timeout=10).json()["servers"] == [{"url": "/api"}]


def test_the_app_routes_keep_their_auth_levels_and_the_host_routes_stay_reachable(host):
    levels = {name: function.trigger.get("authLevel") for name, function in host.functions.items()
              if function.trigger_type == "httpTrigger"}
    # No route needs a function key: the API authorises every call itself (the App Service Authentication
    # principal and its roles), health is for probes, and a browser opening the console has no key.
    assert levels == {"api": "ANONYMOUS", "health": "ANONYMOUS", "console": "ANONYMOUS"}
    assert requests.get(f"{host.url}/admin/host/status", timeout=10).json()["state"] == "Running"
    handshake = [{"id": "1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                  "data": {"validationCode": "abc"}}]
    answer = requests.post(f"{host.url}/runtime/webhooks/blobs?functionName=Host.Functions.segment_uploaded",
                           json=handshake, timeout=10)
    assert answer.json() == {"validationResponse": "abc"}


def test_make_devhost_prints_the_console_url(host, azurite, tmp_path):
    import os
    import subprocess
    import sys
    import time

    from tools.azurite import free_port

    assert host.serves_root
    port = free_port()
    environment = {**os.environ, "AzureWebJobsStorage": azurite.connection_string, "KEY_VAULT_URL": "",
                   "EXPORT_QUEUE": f"chunks-{uuid.uuid4().hex[:8]}", "LOCAL_SECRETS_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "tools.devhost", "--port", str(port)], cwd=ROOT,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline and not any(line.startswith("Console:") for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
    finally:
        process.terminate()
        process.communicate(timeout=15)
    assert f"Console: http://127.0.0.1:{port}/" in lines, lines


def test_a_dev_host_that_checks_function_keys_lets_every_route_of_the_app_through(host):
    # --function-key makes the dev host refuse keyless calls to keyed routes, as Azure does; the app has none.
    host.function_key = "local-function-key"
    try:
        assert requests.get(f"{host.url}/api/exports", timeout=10).json() == {"exports": []}
        assert requests.get(f"{host.url}/api/exports", headers={"x-functions-key": "wrong"}, timeout=10).status_code == 200
        assert requests.get(f"{host.url}/api/me", timeout=10).json()["role"] == "admin"
        assert requests.get(f"{host.url}/api/health", timeout=10).status_code == 200
        assert requests.get(f"{host.url}/", timeout=10).status_code == 200
    finally:
        host.function_key = None
