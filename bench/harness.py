"""What the benchmarks of whole runs share: Azurite and the Omnisend sandbox as their own processes
(the sandbox's rate-limit window optionally compressed), the function app under the dev host as a
process of its own (so its CPU time and peak memory are the app's alone), the HTTP calls that set up
and run an export, and the sandbox's request log.

    services = start_services("bench-sync", window_seconds=15)
    app = AppProcess.start(services, workers=4)
    api = Api(app.url, services)
    ...
    app.peak_rss_mb(), app.cpu_seconds()
    app.stop(); services.stop()
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import requests

from tools.azurite import ROOT, Azurite, free_port, start_azurite
from tools.demo import call, stop_process, wait_until_up

GENERAL_BUDGET, TAG_BUDGET = 400, 60  # Omnisend's per-window limits (per minute in Omnisend)
SEGMENTS, STATE = "segments", "export-state"


@dataclass
class Services:
    """Azurite and the Omnisend sandbox, each in its own process."""

    azurite: Azurite
    sandbox: subprocess.Popen
    omnisend_url: str
    window_seconds: float
    secrets_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="omnisend-bench-secrets-"))

    @property
    def admin(self) -> str:
        return self.omnisend_url.removesuffix("/api") + "/_sandbox"

    @property
    def connection_string(self) -> str:
        return self.azurite.connection_string

    def app_env(self) -> dict[str, str]:
        return dict(
            os.environ, AzureWebJobsStorage=self.connection_string, OMNISEND_API_URL=self.omnisend_url,
            KEY_VAULT_URL="", SEGMENTS_CONTAINER=SEGMENTS, STATE_CONTAINER=STATE, EXPORT_QUEUE="export-chunks",
            EXPORT_SCHEDULE="0 0 2 * * *", LOCAL_SECRETS_DIR=self.secrets_dir,
        )

    def container(self, name: str = SEGMENTS):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string).get_container_client(name)

    def stop(self) -> None:
        stop_process(self.sandbox)
        self.azurite.stop(remove_data=True)


def start_services(name: str, *, window_seconds: float = 60.0) -> Services:
    """Azurite (fresh data) and the sandbox with Omnisend's limits per `window_seconds` window."""
    azurite = start_azurite(f"{name}-{os.getpid()}")
    try:
        port = free_port()
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "tools.omnisend_sandbox", "--port", str(port),
             "--window-seconds", str(window_seconds), "--requests-per-minute", str(GENERAL_BUDGET),
             "--tag-requests-per-minute", str(TAG_BUDGET)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until_up(f"http://127.0.0.1:{port}/_sandbox/state", sandbox)
    except BaseException:
        azurite.stop(remove_data=True)
        raise
    services = Services(azurite, sandbox, f"http://127.0.0.1:{port}/api", window_seconds)
    services.container(SEGMENTS).create_container()
    return services


class AppProcess:
    """The function app under the dev host (`bench.apphost`), in a process of its own."""

    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process, self.url = process, url

    @classmethod
    def start(cls, services: Services, *, workers: int = 4, profile: str | None = None) -> "AppProcess":
        port = free_port()
        log = open(tempfile.mktemp(prefix="bench-app-", suffix=".log"), "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.apphost", "--window-seconds", str(services.window_seconds),
             "--port", str(port), "--workers", str(workers), "--log-level", "WARNING",
             *(["--profile", profile] if profile else [])],
            cwd=ROOT, env=services.app_env(), stdout=log, stderr=subprocess.STDOUT,
        )
        app = cls(process, f"http://127.0.0.1:{port}")
        wait_until_up(f"{app.url}/api/health", process)
        app.log_path = log.name
        return app

    def _proc(self, name: str) -> str:
        with open(f"/proc/{self.process.pid}/{name}") as f:
            return f.read()

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory so far (VmHWM: Python, the SDKs, the host, the app)."""
        for line in self._proc("status").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")

    def cpu_seconds(self) -> float:
        fields = self._proc("stat").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        stop_process(self.process)


class Api:
    """The driver's calls: the app's HTTP API (connections, exports, runs) and the sandbox's admin surface."""

    def __init__(self, app_url: str, services: Services) -> None:
        self.api, self.admin = f"{app_url}/api", services.admin
        self.session = requests.Session()

    def export(self, name: str, brand: str, segments: list[str], mapping: dict, *, tag: bool) -> str:
        """A new sandbox brand's key, a connection with it, and an export of `segments`: the export's id."""
        key = self.session.post(f"{self.admin}/keys", json={"brandID": brand}, timeout=10).json()["key"]
        connection = call(self.session, "POST", f"{self.api}/connections",
                          {"displayName": name, "apiKey": key, "consent": True})
        return call(self.session, "POST", f"{self.api}/exports", {
            "displayName": name, "connectionId": connection["id"], "segments": segments, "mapping": mapping,
            "runOn": [], "tagContacts": tag})["id"]

    def run(self, export_id: str, poll: float = 0.25) -> tuple[dict, float]:
        """Start a run and wait for its end: (the run as the API shows it, wall seconds)."""
        started = time.monotonic()
        run_id = call(self.session, "POST", f"{self.api}/exports/{export_id}/runs", None)["runId"]
        while not (run := self._get(f"{self.api}/runs/{run_id}"))["finishedAt"]:
            time.sleep(poll)
        return run, time.monotonic() - started

    def _get(self, url: str, attempts: int = 5) -> dict:
        """A GET that waits out a busy app (a planner holding the interpreter on a loaded machine)."""
        for attempt in range(attempts):
            try:
                return self.session.get(url, timeout=60).json()
            except requests.Timeout:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def log_mark(self) -> int:
        return len(self.session.get(f"{self.admin}/log", params={"brief": 1}, timeout=60).json())

    def requests_since(self, mark: int, brand: str) -> list[dict]:
        """The sandbox's records without bodies (time, method, path, status, kind) of `brand` since `mark`."""
        found = self.session.get(f"{self.admin}/log", params={"since": mark, "brief": 1}, timeout=120).json()
        return [r for r in found if r["brand_id"] == brand]


def per_minute(records: list[dict], window: float = 60.0) -> float:
    """The busiest sliding window's request count (the measure Omnisend's limit applies to); for a
    run shorter than a window, its rate scaled to a window."""
    times = sorted(r["time"] for r in records)
    if len(times) < 2:
        return float(len(times))
    if times[-1] - times[0] < window:
        return len(times) / (times[-1] - times[0]) * window
    end, busiest = 0, 0
    for start, t in enumerate(times):
        while end < len(times) and times[end] < t + window:
            end += 1
        busiest = max(busiest, end - start)
    return float(busiest)
