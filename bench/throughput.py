"""Throughput of whole runs against Omnisend's real rate limits: contacts/min, requests/min against
the budget, 429s, and the app's CPU time and peak memory.

Azurite and the Omnisend sandbox (400 requests/min, 60 tag calls/min, sliding 60 s windows, as
Omnisend) run as their own processes; the function app runs in this process under the dev host with
4 queue workers, so the CPU and memory figures are the app's alone.

    python -m bench.throughput [--profiles 20000] [--workers 4] [--scenario without-tags|with-tags]
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import requests

from bench.harness import per_minute as _per_minute
from shared.blobstate import parse_utc
from tools.azurite import start_azurite
from tools.demo import call, start_sandbox, stop_process
from tools.sample_export import DEFAULT_MAPPING, generate_profiles, write_ci_export

GENERAL_BUDGET, TAG_BUDGET = 400, 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scenario", choices=("without-tags", "with-tags"), action="append",
                        help="run only this scenario (repeatable; default: both)")
    args = parser.parse_args()

    azurite = start_azurite(f"bench-{os.getpid()}")
    sandbox, omnisend_url, _ = start_sandbox()
    os.environ.update(
        AzureWebJobsStorage=azurite.connection_string, OMNISEND_API_URL=omnisend_url, KEY_VAULT_URL="",
        SEGMENTS_CONTAINER="segments", STATE_CONTAINER="export-state", EXPORT_QUEUE="export-chunks",
        EXPORT_SCHEDULE="0 0 2 * * *", LOCAL_SECRETS_DIR=tempfile.mkdtemp(prefix="omnisend-bench-secrets-"),
    )
    from tools.devhost import DevHost  # imports the app: after the settings are in place

    host = DevHost(port=0, workers=args.workers).start()
    try:
        from azure.storage.blob import BlobServiceClient

        segments = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client("segments")
        segments.create_container()
        write_ci_export(segments, {"Bench": generate_profiles(args.profiles, seed=3, bad_share=0.0,
                                                              duplicate_share=0.0)}, partitions=3)
        print(f"{args.profiles:,} profiles, {args.workers} queue workers, budget {GENERAL_BUDGET}/min general, "
              f"{TAG_BUDGET}/min tags (the sandbox enforces Omnisend's limits)\n")
        print(f"{'scenario':<13}{'wall':>8}{'contacts/min':>14}{'ceiling':>9}{'general/min':>13}{'tags/min':>10}"
              f"{'429s':>6}{'app CPU':>9}{'CPU ms/1k':>11}")
        chosen = args.scenario or ["without-tags", "with-tags"]
        for name, tag in (("without tags", False), ("with tags", True)):
            if name.replace(" ", "-") in chosen:
                measure(host, omnisend_url, name, tag, args.profiles)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak memory of the app process (dev host, 4 workers, this driver): {peak:.0f} MB")
    finally:
        host.stop()
        stop_process(sandbox)
        azurite.stop(remove_data=True)


def measure(host, omnisend_url: str, name: str, tag: bool, profiles: int) -> None:
    admin = omnisend_url.removesuffix("/api") + "/_sandbox"
    session = requests.Session()
    brand = f"bench{int(tag)}"
    key = session.post(f"{admin}/keys", json={"brandID": brand}, timeout=10).json()["key"]
    api = f"{host.url}/api"
    connection = call(session, "POST", f"{api}/connections", {"displayName": name, "apiKey": key, "consent": True})
    export = call(session, "POST", f"{api}/exports", {
        "displayName": name, "connectionId": connection["id"], "segments": ["Bench"],
        "mapping": DEFAULT_MAPPING, "runOn": [], "tagContacts": tag})
    log_start = len(session.get(f"{admin}/log", params={"brief": 1}, timeout=30).json())
    cpu_before = _cpu()
    started = time.monotonic()  # the sandbox logs times of the same (system-wide) monotonic clock
    started_at = time.time()
    run_id = call(session, "POST", f"{api}/exports/{export['id']}/runs", None)["runId"]
    while not (run := session.get(f"{api}/runs/{run_id}", timeout=30).json())["finishedAt"]:
        time.sleep(0.5)
    # From the request that started the run to the end the run records (this machine's clock), not to
    # the poll that saw it up to 0.5 s later.
    wall = parse_utc(run["finishedAt"]).timestamp() - started_at
    cpu = _cpu() - cpu_before
    log = [r for r in session.get(f"{admin}/log", params={"since": log_start, "brief": 1}, timeout=60).json()
           if r["brand_id"] == brand]
    assert run["status"] == "succeeded", run
    sent = run["counts"]["sent"]
    general = [r for r in log if r["kind"] == "general"]
    tags = [r for r in log if r["kind"] == "tags"]
    limited = sum(1 for r in log if r["status"] == 429)
    ceiling = 100 * GENERAL_BUDGET if not tag else 250 * TAG_BUDGET  # contacts/min Omnisend allows
    print(f"{name:<13}{wall:>7.0f}s{sent / wall * 60:>14,.0f}{sent / wall * 60 / ceiling:>9.1%}"
          f"{_per_minute(general):>13.0f}{_per_minute(tags):>10.0f}{limited:>6}{cpu:>8.1f}s{cpu / sent * 1e6:>11.1f}")
    kinds: dict[str, int] = {}
    for r in log:
        what = f"{r['method']} {r.get('template') or r['path']}"
        kinds[what] = kinds.get(what, 0) + 1
    first, last = (min(r["time"] for r in log), max(r["time"] for r in log)) if log else (started, started)
    print(f"{'':<13}requests: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda i: -i[1]))
          + f"; Omnisend busy {last - first:.1f} s of the {wall:.1f} s wall, from {first - started:.1f} s to "
          f"{last - started:.1f} s")
    upserts = sorted(r["time"] for r in log if (r["method"], r["path"]) == ("POST", "/batches"))
    if upserts:
        print(f"{'':<13}upserts from {upserts[0] - started:.1f} s to {upserts[-1] - started:.1f} s: "
              f"{len(upserts) / (upserts[-1] - upserts[0] or 1) * 60:,.0f} a minute between the first and the last")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
