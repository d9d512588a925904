"""`make run`: one whole export on local defaults, end to end, then everything is stopped again.

Starts Azurite and the Omnisend sandbox (the real Omnisend when OMNISEND_API_KEY is set), starts the
dev host with the function app, writes a sample Customer Insights export, creates a connection and an
export through the HTTP API, runs it with a progress bar, and prints the summary, the rejects file and
one contact as Omnisend holds it. The profiles carry a loyalty tier, birthdate, gender and preferred
stores beside the names and addresses; the export maps them (EXTENDED_MAPPING): birthdate and gender
as contact fields, the rest (with lifetime value and last purchase date) as typed custom properties.

Then the next day: Customer Insights writes the segments again with a few hundred first names
changed, some people gone from a segment and some new ones, a marketer tags one unrelated contact by
hand with a segment's name, and the export runs again. Only what changed is sent: the second run's
counts (added, updated, unchanged, untagged) and the requests it made to the sandbox are printed, and
the hand-made tag is still there.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

from tools.azurite import ROOT, free_port, start_azurite

RESULTS = ROOT / ".local" / "runs"
SEGMENTS = ("HighValueCustomers", "NewsletterSubscribers")
HAND_TAGGED = "marketer.pick@example.org"  # a contact no segment holds, tagged by hand with a segment's name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=7071, help="dev host port (default 7071)")
    parser.add_argument("--profiles", type=int, default=20_000, help="profiles in the sample export")
    parser.add_argument("--workers", type=int, default=4, help="queue invocations at once (scale-out)")
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        azurite = start_azurite("run")
        stack.callback(azurite.stop)
        say(f"Azurite on 127.0.0.1:{azurite.blob_port} (data in .azurite/run)")

        api_key = os.environ.get("OMNISEND_API_KEY")
        omnisend_url = os.environ.get("OMNISEND_API_URL", "https://api.omnisend.com/api")
        sandbox_url = None
        if api_key:
            say(f"Using the real Omnisend at {omnisend_url} (OMNISEND_API_KEY is set)")
        else:
            sandbox, omnisend_url, api_key = start_sandbox()
            sandbox_url = omnisend_url.removesuffix("/api")
            stack.callback(stop_process, sandbox)
            say(f"Omnisend sandbox at {omnisend_url} (400 requests/min, 60 tag calls/min, like Omnisend)")

        env = dict(
            os.environ,
            AzureWebJobsStorage=azurite.connection_string,
            OMNISEND_API_URL=omnisend_url,
            SEGMENTS_CONTAINER="segments",
            STATE_CONTAINER="export-state",
            EXPORT_QUEUE="export-chunks",
            EXPORT_SCHEDULE="0 0 2 * * *",
            KEY_VAULT_URL="",
        )
        env.pop("OMNISEND_API_KEY", None)
        host = start_devhost(env, args.port, args.workers)
        stack.callback(stop_process, host)
        base = f"http://127.0.0.1:{args.port}/api"
        console = f"http://127.0.0.1:{args.port}/"
        wait_until_up(f"{base}/health", host)
        say(f"Dev host at {base} with {args.workers} queue workers")
        say(f"Console: {console} (open it to watch the run)")

        first_day = datetime.now(timezone.utc)
        expected = write_sample(azurite.connection_string, args.profiles, first_day)
        say(f"Wrote a Customer Insights export: {expected['rows']:,} profile rows in {len(SEGMENTS)} segments, "
            f"with loyalty tier, birthdate, gender and preferred stores")

        session = requests.Session()
        connection = call(session, "POST", f"{base}/connections", {
            "displayName": "Omnisend (make run)", "apiKey": api_key, "consent": True,
        })
        export = create_export(session, f"{base}/exports", {
            "displayName": "Sample segments to Omnisend", "connectionId": connection["id"],
            "segments": list(SEGMENTS), "mapping": expected["mapping"], "runOn": [],
        }, env)
        final = run_export(session, base, export["id"])
        show_contact(omnisend_url, api_key, SEGMENTS[0])

        print()
        changed = write_sample(azurite.connection_string, args.profiles, first_day + timedelta(days=1), next_day=True)
        day = changed["next_day"]
        say(f"The next day's export: {changed['rows']:,} rows; {changed['renamed']:,} people changed their first "
            f"name, {day.left_first} left {SEGMENTS[0]} (and every segment), {day.left_last} left {SEGMENTS[-1]} "
            f"only, {day.joined} new people joined {SEGMENTS[-1]}")
        brand = api_key.split("-", 1)[0]
        if sandbox_url:
            call(session, "POST", f"{sandbox_url}/_sandbox/hand-tags",
                 {"email": HAND_TAGGED, "add": [SEGMENTS[0]], "brandID": brand})
            say(f"A marketer tagged {HAND_TAGGED} (in no segment) {SEGMENTS[0]!r} by hand in Omnisend")
            log_start = call(session, "GET", f"{sandbox_url}/_sandbox/state", None)["requestCount"]
        second = run_export(session, base, export["id"], sync_counts=True)
        if sandbox_url:
            show_requests(call(session, "GET", f"{sandbox_url}/_sandbox/log?since={log_start}", None), second)
            tags = call(session, "GET", f"{sandbox_url}/_sandbox/tags?email={HAND_TAGGED}&brandID={brand}", None)
            say(f"{HAND_TAGGED} keeps its hand-made tag: {tags[HAND_TAGGED]}")
        if sys.stdin.isatty():
            keep_serving(console)
        ok = ("succeeded", "partiallySucceeded")
        return 0 if final["status"] in ok and second["status"] in ok else 1


def run_export(session: requests.Session, base: str, export_id: str, *, sync_counts: bool = False) -> dict:
    """Start a run of the export, follow it to its end, save its rejects and print its summary."""
    run = call(session, "POST", f"{base}/exports/{export_id}/runs", None)
    say(f"Run {run['runId']} queued")
    final = follow(session, f"{base}/runs/{run['runId']}")
    rejects = save_rejects(session, f"{base}/runs/{run['runId']}/rejects", run["runId"])
    summarize(final, rejects, sync_counts=sync_counts)
    return final


def keep_serving(console: str) -> None:
    """In a terminal, leave everything running so the run can be looked at in the console."""
    say(f"Everything stays up for the console at {console}: press Ctrl+C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()


def say(text: str) -> None:
    print(f"» {text}", flush=True)


def start_sandbox() -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    key = "demo-brand-" + os.urandom(8).hex()
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.omnisend_sandbox", "--port", str(port), "--key", key],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    wait_until_up(f"http://127.0.0.1:{port}/_sandbox/state", process)
    return process, url, key


def start_devhost(env: dict, port: int, workers: int) -> subprocess.Popen:
    log_path = ROOT / ".local" / "devhost.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "tools.devhost", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[2]} exited with {process.returncode} (see .local/)")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def write_sample(connection_string: str, count: int, when: datetime, *, next_day: bool = False) -> dict:
    """The sample export as Customer Insights writes it at `when`; `next_day`: the same people a day later."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    from tools import sample_export

    container = BlobServiceClient.from_connection_string(connection_string).get_container_client("segments")
    try:
        container.create_container()
    except ResourceExistsError:
        pass
    changes = sample_export.NextDay() if next_day else None
    written = sample_export.write_demo_export(container, count, SEGMENTS, map_custom_fields=True, next_day=changes,
                                              when=when)
    return {**written, "next_day": changes}


def call(session: requests.Session, method: str, url: str, body: dict | None) -> dict:
    response = session.request(method, url, json=body, timeout=30)
    if response.status_code >= 400:
        raise SystemExit(f"{method} {url} answered {response.status_code}: {response.text}")
    return response.json()


def create_export(session: requests.Session, url: str, body: dict, env: dict) -> dict:
    """POST /exports (the mapping with birthdate, gender and customProperties as it is)."""
    return call(session, "POST", url, body)


def follow(session: requests.Session, url: str) -> dict:
    interactive = sys.stdout.isatty()
    started = time.monotonic()
    last_line = 0.0
    while True:
        run = session.get(url, timeout=30).json()
        line = progress_line(run, time.monotonic() - started)
        if interactive:
            print("\r" + line, end="", flush=True)
        elif time.monotonic() - last_line >= 5 or run["finishedAt"]:
            print(line, flush=True)
            last_line = time.monotonic()
        if run["finishedAt"]:
            if interactive:
                print()
            return run
        time.sleep(0.5)


def progress_line(run: dict, elapsed: float, width: int = 30) -> str:
    done = int(run["progress"] * width)
    counts = run["counts"]
    minutes, seconds = divmod(int(elapsed), 60)
    return (
        f"[{'#' * done}{'.' * (width - done)}] {run['progress']:6.1%} {run['status']:<18} "
        f"rows {counts['rows']:,} · sent {counts['sent']:,} · unchanged {counts.get('unchanged', 0):,} · "
        f"rejected {counts['rejected']:,} · "
        f"failed {counts['failed']:,} · {minutes}m{seconds:02d}s"
    )


def save_rejects(session: requests.Session, url: str, run_id: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{run_id}-rejects.csv"
    path.write_bytes(session.get(url, timeout=60).content)
    return path


def summarize(run: dict, rejects: Path, *, sync_counts: bool = False) -> None:
    counts = run["counts"]
    print()
    say(f"Run {run['runId']}: {run['status']} ({run.get('mode', 'incremental')}) in {run['startedAt']} → "
        f"{run['finishedAt']}")
    print(json.dumps(counts, indent=2))
    if sync_counts:
        say(f"Added {counts.get('added', 0):,} · updated {counts.get('updated', 0):,} · "
            f"unchanged {counts.get('unchanged', 0):,} · untagged {run.get('untagged', 0):,}")
    balanced = counts["rows"] == counts["sent"] + counts.get("unchanged", 0) + counts["rejected"] + counts["failed"]
    say(f"rows = sent + unchanged + rejected + failed: {'yes' if balanced else 'NO'}")
    if "untagged" in run:
        say(f"Contacts that left a segment and lost its tag: {run['untagged']:,}")
    if run.get("error"):
        say(f"error: {run['error']}")
    say(f"Rejected and failed rows, with reasons: {rejects.relative_to(ROOT)}")


def show_requests(log: list[dict], run: dict) -> None:
    """What the run asked of Omnisend, by endpoint, from the sandbox's request log."""
    calls = Counter(f"{record['method']} {record.get('template') or record['path']}" for record in log)
    upserted = sum(len(record["body"].get("items", [])) for record in log
                   if record["method"] == "POST" and record["path"] == "/batches" and isinstance(record["body"], dict))
    say(f"Requests to Omnisend in this run: {len(log):,} "
        f"({', '.join(f'{name}: {number}' for name, number in sorted(calls.items()))}); "
        f"{upserted:,} contacts upserted")
    say(f"The {run['counts'].get('unchanged', 0):,} unchanged rows cost no request")


def show_contact(omnisend_url: str, api_key: str, segment: str) -> None:
    """One contact of the segment as Omnisend holds it: the mapped fields, converted."""
    from shared.omnisend import OmnisendClient
    from shared.ratelimit import SlidingWindowLimiter

    with OmnisendClient(api_key, limiter=SlidingWindowLimiter(), base_url=omnisend_url) as client:
        contact = next((c for c in client.iter_contacts(tag=segment) if c.get("birthdate") and c.get("gender")), None)
    if contact is not None:
        shown = {key: contact.get(key) for key in ("email", "firstName", "countryCode", "birthdate", "gender",
                                                    "customProperties") if contact.get(key) is not None}
        say(f"A contact of {segment} in Omnisend:")
        print(json.dumps(shown, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
