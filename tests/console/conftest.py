"""Browser tests of the console: the function app under the dev host, Azurite, the Omnisend sandbox,
and one headless Chromium for the whole session (tools/browser.py says which one).

Each test module gets its own dev host and containers (`stack`), so what a page lists is what that
module made. Each test gets pages through `open_page(role)`: a fresh browser context (en-US, UTC)
whose requests carry the X-MS-CLIENT-PRINCIPAL header App Service Authentication would add for that
role. After the test, every page must have logged no console error and thrown nothing, called only
API routes of openapi/exports-api.json, and fetched nothing from another origin. `check_page` runs
axe-core (0 serious or critical violations) and, when asked, saves the page's screenshot into docs/:
with every timestamp shown as SHOWN_AT, so that an unchanged console gives byte-identical images.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from shared.auth import ADMIN_ROLE, CONTRIBUTOR_ROLE, encode_principal
from tests.conftest import hosted_app
from tools.browser import HOW_TO_INSTALL, find_chromium
from tools.devhost import DevHost
from tools.omnisend_sandbox import OmnisendSandbox
from tools.sample_export import DEFAULT_MAPPING, generate_profiles, write_ci_export, write_plain_segment

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
OPENAPI = ROOT / "openapi" / "exports-api.json"
FAST = 100_000
DESKTOP = {"width": 1200, "height": 800}
MOBILE = {"width": 360, "height": 740}
# Screenshots show every timestamp (a <time> element) as this instant; the real ones differ on every run.
SHOWN_AT = "2026-04-01T09:30:00Z"
ROLES = {
    "admin": ("admin@contoso.com", [ADMIN_ROLE]),
    "contributor": ("contributor@contoso.com", [CONTRIBUTOR_ROLE]),
    "norole": ("guest@contoso.com", []),
}


# --- the browser: one per session, never skipped -------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is not installed (requirements-dev.txt; `make test` installs it). "
                    "The console's browser tests cannot run without it.", pytrace=False)
    chromium = find_chromium()
    if chromium is None:
        pytest.fail(HOW_TO_INSTALL, pytrace=False)
    # An assertion waits as long as an action (open_page's 15 s), not Playwright's 5 s: on a busy
    # machine an API answer behind a storage retry takes seconds, and the test is about what the page shows.
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium.path, headless=True)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"axe-core is missing ({AXE.relative_to(ROOT)}): run `npm ci` (make test does).", pytrace=False)
    return AXE.read_text(encoding="utf-8")


# --- the app: dev host + Azurite + sandbox, with a few small segments ------------------------------


@dataclass
class Stack:
    host: DevHost
    sandbox: OmnisendSandbox
    segments: object  # ContainerClient of the segments container
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.host.url

    def call(self, method: str, path: str, body: dict | None = None, *, role: str = "admin",
             expect: int = 200, headers: dict | None = None) -> requests.Response:
        identity, roles = ROLES[role]
        all_headers = {"X-MS-CLIENT-PRINCIPAL": encode_principal(identity, roles), **(headers or {})}
        response = self.session.request(method, f"{self.url}/api/{path}", json=body, headers=all_headers, timeout=30)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def connection(self, name: str, usable_by: str = "admins", key: str | None = None) -> dict:
        key = key or self.sandbox.add_key(f"brand-{uuid.uuid4().hex[:8]}")
        body = {"displayName": name, "apiKey": key, "consent": True, "usableBy": usable_by,
                "requestsPerMinute": FAST, "tagRequestsPerMinute": FAST}
        return self.call("POST", "connections", body, expect=201).json()

    def export(self, name: str, connection_id: str, segments=("Vip",), role: str = "admin",
               **changes) -> tuple[dict, str]:
        body = {"displayName": name, "connectionId": connection_id, "segments": list(segments),
                "mapping": dict(DEFAULT_MAPPING), "runOn": [], **changes}
        response = self.call("POST", "exports", body, role=role, expect=201)
        return response.json(), response.headers["ETag"]

    def run_to_end(self, export_id: str, timeout: float = 120.0) -> dict:
        """Start a run of the export and wait until it has ended; the run as GET /api/runs/{id} shows it."""
        run_id = self.call("POST", f"exports/{export_id}/runs", expect=202).json()["runId"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.call("GET", f"runs/{run_id}").json()
            if run["finishedAt"]:
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} did not end within {timeout:.0f} s: {run}")


@pytest.fixture(scope="module")
def stack(azurite, tmp_path_factory):
    with hosted_app(azurite, tmp_path_factory.mktemp("secrets"), workers=2) as (host, sandbox, segments):
        # Small segments, with some bad rows so that runs have rejects; one Customer Insights export too.
        write_plain_segment(segments, "Vip", generate_profiles(40, seed=11, bad_share=0.15))
        write_plain_segment(segments, "Newsletter", generate_profiles(30, seed=12, bad_share=0.1))
        write_ci_export(segments, {"HighValue": generate_profiles(20, seed=13)}, partitions=1)
        yield Stack(host, sandbox, segments)


# --- pages ------------------------------------------------------------------------------------------


def _api_routes() -> list[tuple[str, re.Pattern]]:
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    routes = []
    for template, item in document["paths"].items():
        pattern = re.compile("^/api" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
        routes += [(method.upper(), pattern) for method in item if method in ("get", "post", "put", "delete")]
    return routes


API_ROUTES = _api_routes()


@dataclass
class Watched:
    """What one page did that the test checks afterwards."""

    page: object
    errors: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture()
def open_page(browser, stack):
    """open_page(role, path="/#/exports", viewport=DESKTOP, principal=None) -> a Playwright page, loaded."""
    watched: list[Watched] = []
    contexts = []

    def open_(role: str = "admin", path: str = "/#/exports", viewport: dict = DESKTOP, principal: str | None = None):
        identity, roles = ROLES[role]
        # A fixed locale and time zone: dates and numbers read the same on every machine.
        context = browser.new_context(viewport=viewport, locale="en-US", timezone_id="UTC", extra_http_headers={
            "X-MS-CLIENT-PRINCIPAL": principal or encode_principal(identity, roles)})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        record = Watched(page)
        watched.append(record)
        page.on("console", lambda message: _console(record, message))
        page.on("pageerror", lambda error: record.errors.append(f"uncaught: {error}"))
        page.on("request", lambda request: record.requests.append((request.method, request.url)))
        page.goto(stack.url + path)
        page.locator("main h1").first.wait_for()
        return page

    yield open_
    for context in contexts:
        context.close()
    for record in watched:
        assert not record.errors, f"console errors: {record.errors}"
        foreign = [url for _, url in record.requests if not url.startswith(stack.url + "/") and not url.startswith("blob:")
                   and not url.startswith("data:")]
        assert not foreign, f"requests to other origins: {foreign}"
        undocumented = [(method, url) for method, url in record.requests if urlsplit(url).path.startswith("/api/")
                        and not any(method == m and p.match(urlsplit(url).path) for m, p in API_ROUTES)]
        assert not undocumented, f"API calls not in openapi/exports-api.json: {undocumented}"


def _console(record: Watched, message) -> None:
    if message.type != "error":
        return
    # The browser logs every 4xx/5xx answer as "Failed to load resource". An API problem the console
    # shows in words (a refused key, a conflict) is expected; any other failed load is an error.
    url = (message.location or {}).get("url", "")
    if message.text.startswith("Failed to load resource") and urlsplit(url).path.startswith("/api/"):
        return
    record.errors.append(f"{message.text} ({url})")


@pytest.fixture()
def check_page(axe_source):
    """check_page(page, name, screenshot=False): axe-core finds no serious or critical violation; with
    screenshot=True the page is saved as docs/console-<name>.png, its timestamps shown as SHOWN_AT."""

    def check(page, name: str, *, screenshot: bool = False) -> None:
        page.wait_for_load_state("networkidle")
        page.evaluate(axe_source)
        result = page.evaluate("""async () => {
            const found = await axe.run(document, {resultTypes: ["violations"]});
            return found.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5)}));
        }""")
        serious = [item for item in result if item["impact"] in ("serious", "critical")]
        assert not serious, f"axe-core on {name}: {json.dumps(serious, indent=1)}"
        if screenshot:
            _pin_timestamps(page, name)
            DOCS.mkdir(exist_ok=True)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(DOCS / f"console-{name}.png"), full_page=True, animations="disabled")

    return check


def _pin_timestamps(page, name: str) -> None:
    """Show every <time> as SHOWN_AT, in the console's own format (dom.js `when`), and make sure no other
    date is on the page: a date outside a <time> element would make the screenshot differ on every run."""
    shown = page.evaluate("""async (instant) => {
        const {when} = await import("/dom.js");
        for (const element of document.querySelectorAll("time[datetime]")) element.textContent = when(instant);
        return when(instant);
    }""", SHOWN_AT)
    text = page.evaluate("() => document.body.innerText").replace(shown, "")
    stray = re.findall(r"\b(?:19|20)\d\d\b", text)
    assert not stray, f"{name}: a date outside a <time> element ({stray}) would change the screenshot on every run"
