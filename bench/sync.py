"""Incremental mirror sync against Omnisend's limits: a first run with tags, an unchanged rerun, and a
rerun with 1% of the rows changed and 1% leavers. One line per figure, with its goal and pass/fail.

    python -m bench.sync [--scenarios first,unchanged,changed] [--profiles 200000]
                         [--export-profiles 1000000] [--window-seconds 15] [--workers 4] [--profile DIR]

Azurite and the Omnisend sandbox run as their own processes; the sandbox enforces Omnisend's
per-window limits (400 requests, 60 tag calls) over `--window-seconds` (15: four times faster than
Omnisend's minute), and the app's shared budgets count over the same window (`bench.apphost`). The
function app runs under the dev host with `--workers` queue workers in a process of its own, started
afresh for each scenario: its peak memory is that process's peak RSS (VmHWM: Python, the Azure SDK,
the host and every worker included), its CPU time that process's.

first      `--profiles` profiles in one tagged CI segment, the export's first run (no sync state).
           Its floor is the slower of the upserts (one per 100 contacts at 400 per window) and the tag
           calls (one per 250 at 60 per window); the goal is a wall time within 1.1 of it. The sync
           state the run saves is then compared with the one the `unchanged` setup writes for the
           same export (it must be identical, column by column).
unchanged  `--export-profiles` profiles in one tagged CI segment. The export's sync state is written
           as a verified first run would have left it (every row sent and tagged: the run's change
           logs, merged, folded and stored by the app's own `shared.sync`), without a million
           upserts through the sandbox. Then a run of the unchanged export: no contact write, no
           tag call, wall < 60 s, app peak < 300 MB.
changed    the next export of the same segment: every 100th row changed (its first name), every
           100th left the segment. Its requests against the ideal: one upsert per 100 changed
           contacts, one tag call per 250 tag changes (the leavers' tag removals), plus status
           reads, counted at one `GET /batches` per 10 upserts (one look at a chunk's worth of
           batches), and the planner's key check; and the same without the status reads.
"""
from __future__ import annotations

import argparse
import math
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Iterator

from bench.harness import GENERAL_BUDGET, STATE, TAG_BUDGET, AppProcess, Api, Services, per_minute, start_services
from tools.sample_export import DEFAULT_MAPPING, ProfileSet, generate_profiles, write_ci_export

SCENARIOS = ("first", "unchanged", "changed")
DAY_ONE = datetime(2026, 3, 19, 1, 30, tzinfo=timezone.utc)
EVERY = 100  # every 100th row changes, every 100th (another one) leaves


def line(name: str, value: str, goal: str, ok: bool | None) -> None:
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    print(f"{name:<44} {value:<44} {goal:<16} {verdict}", flush=True)


# ------------------------------------------------------------------------------ the next day's export


@dataclass(frozen=True)
class NextDay:
    """Day one's profiles the next day: row i with i % 100 == 0 left, i % 100 == 1 has a new first name."""

    day_one: ProfileSet

    @property
    def columns(self) -> tuple[str, ...]:
        return self.day_one.columns

    @property
    def count(self) -> int:
        return sum(1 for _ in self._rows(0, self.day_one.count))

    @staticmethod
    def stays(i: int) -> bool:
        return i % EVERY != 0

    @staticmethod
    def changes(i: int) -> bool:
        return i % EVERY == 1

    def _rows(self, start: int, stop: int) -> Iterator[int]:
        return (i for i in range(start, stop) if self.stays(i))

    def record(self, i: int) -> bytes:
        line = self.day_one.record(i)
        if self.changes(i):
            fields = self.day_one.fields(i)
            line = line.replace(f",{fields[1]},".encode(), f",{fields[1]}-Marie,".encode(), 1)
        return line

    def blocks(self, start: int = 0, stop: int | None = None, *, header: bool = False,
               block_bytes: int = 4 << 20) -> Iterator[bytes]:
        """Rows [start, stop) of the next day (their positions in its file) as CSV blocks."""
        stop = self.count if stop is None else stop
        first = start // (EVERY - 1) * EVERY + start % (EVERY - 1) + 1  # day one's row of next-day row `start`
        parts = [self.day_one.header_line()] if header else []
        size, n, i = 0, start, first
        while n < stop:
            if self.stays(i):
                parts.append(self.record(i))
                size += len(parts[-1])
                n += 1
                if size >= block_bytes:
                    yield b"".join(parts)
                    parts, size = [], 0
            i += 1
        if parts:
            yield b"".join(parts)


# ------------------------------------------------------------------------------ the sync state


def verified_state(services: Services, segment: str, tag: bool, run_id: str):
    """The sync state a first run of the export (the newest CI export of `segment`) leaves when every
    valid row was verified sent and tagged: one change per first row of an email, as its chunk's
    worker logs it, merged and folded by `shared.sync` as the finishing step does."""
    from shared import mapping, segments, sync

    container = services.container()
    found = segments.get_segment(container, segment)
    bound = mapping.bind(mapping.FieldMapping.from_dict(DEFAULT_MAPPING), found.columns, found.name)
    bit = 1 if tag else 0
    seen: set[int] = set()
    changes = []
    for chunk in segments.plan_chunks(container, found, 1000):
        for row in segments.read_chunk(container, chunk):
            mapped = mapping.map_row(bound, row)
            if isinstance(mapped, mapping.MappedContact):
                key = mapping.email_key(mapped.email)
                if key not in seen:
                    seen.add(key)
                    changes.append(sync.ContactChange(key, sync.fingerprint(mapped.contact), bit, email=mapped.email))
    changes.sort(key=itemgetter(0))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return sync.next_state(None, sync.run_tag_table((), [segment] if tag else ()), changes, run_id=run_id,
                           written_at=now, full_at=now)


# ------------------------------------------------------------------------------ scenarios


def first_run(services: Services, args) -> None:
    from shared import sync

    n, window = args.profiles, services.window_seconds
    write_ci_export(services.container(), {"First": generate_profiles(n, seed=11, bad_share=0.0,
                                                                      duplicate_share=0.0)}, partitions=3)
    app = AppProcess.start(services, workers=args.workers, profile=args.profile)
    try:
        api = Api(app.url, services)
        export_id = api.export("first run", "first", ["First"], DEFAULT_MAPPING, tag=True)
        mark, cpu = api.log_mark(), app.cpu_seconds()
        run, wall = api.run(export_id)
        log = api.requests_since(mark, "first")
        cpu, peak = app.cpu_seconds() - cpu, app.peak_rss_mb()
    finally:
        app.stop()
    assert run["status"] == "succeeded", run
    sent = run["counts"]["sent"]
    upserts = [r for r in log if (r["method"], r["path"]) == ("POST", "/batches")]
    tags = [r for r in log if r["kind"] == "tags"]
    general = [r for r in log if r["kind"] == "general"]
    upsert_floor = math.ceil(sent / 100) / GENERAL_BUDGET * window
    tag_floor = math.ceil(sent / 250) / TAG_BUDGET * window
    floor = max(upsert_floor, tag_floor)
    print(f"\nfirst run: {n:,} profiles, one tagged segment, {window:g} s window "
          f"({GENERAL_BUDGET} requests and {TAG_BUDGET} tag calls a window)")
    line("  wall / floor", f"{wall:.1f} s / {floor:.1f} s = {wall / floor:.3f}", "<= 1.1", wall / floor <= 1.1)
    line("  floors: upserts, tag calls", f"{upsert_floor:.1f} s ({len(upserts):,} batches), "
         f"{tag_floor:.1f} s ({len(tags):,} calls)", "", None)
    line("  busiest window: general, tag calls", f"{per_minute(general, window):.0f}, "
         f"{per_minute(tags, window):.0f} (of {GENERAL_BUDGET}, {TAG_BUDGET})", "", None)
    line("  429s", str(sum(1 for r in log if r["status"] == 429)), "", None)
    line("  app CPU, peak memory", f"{cpu:.1f} s ({cpu / sent * 1e6:.0f} ms per 1,000), {peak:.0f} MB", "", None)
    stored = sync.SyncStateStore(services.container(STATE)).load(export_id)
    expected = verified_state(services, "First", True, stored.state.info.run_id)
    same = _same(stored.state, expected)
    line("  its sync state = the verified-run state", f"{len(stored.state):,} contacts, "
         f"{'identical' if same else 'DIFFERENT'}", "identical", same)


def _same(a, b) -> bool:
    return (a.tags == b.tags and a.keys == b.keys and a.fingerprints == b.fingerprints and a.masks == b.masks
            and a.email_lengths == b.email_lengths and list(a.iter_emails()) == list(b.iter_emails()))


def reruns(services: Services, args, scenarios: set[str]) -> None:
    from shared import sync

    n = args.export_profiles
    day_one = generate_profiles(n, seed=13, bad_share=0.0, duplicate_share=0.0)
    write_ci_export(services.container(), {"Mirror": day_one}, partitions=3, when=DAY_ONE)
    app = AppProcess.start(services, workers=args.workers, profile=args.profile)
    try:
        api = Api(app.url, services)
        export_id = api.export("mirror", "mirror", ["Mirror"], DEFAULT_MAPPING, tag=True)
        state = verified_state(services, "Mirror", True, "verified-first-run")
        sync.SyncStateStore(services.container(STATE)).save(export_id, state, etag=None)
        print(f"\nrerun: {n:,} profiles, one tagged segment, its sync state as a verified first run left it "
              f"({len(state):,} contacts)")
        if "unchanged" in scenarios:
            mark, cpu = api.log_mark(), app.cpu_seconds()
            run, wall = api.run(export_id)
            log = api.requests_since(mark, "mirror")
            cpu, peak = app.cpu_seconds() - cpu, app.peak_rss_mb()
            assert run["status"] == "succeeded", run
            writes = [r for r in log if r["method"] == "POST" and r["path"] in ("/batches", "/contacts")]
            tags = [r for r in log if r["kind"] == "tags"]
            counts = run["counts"]
            print(f"unchanged export: rows {counts['rows']:,}, unchanged {counts['unchanged']:,}, "
                  f"sent {counts['sent']:,}")
            line("  contact writes", str(len(writes)), "0", not writes)
            line("  tag calls", str(len(tags)), "0", not tags)
            line("  wall", f"{wall:.1f} s (app CPU {cpu:.1f} s)", "< 60 s", wall < 60)
            line("  peak memory of the app process (VmHWM)", f"{peak:.0f} MB", "< 300 MB", peak < 300)
        app.stop()
        if "changed" in scenarios:
            changed(services, args, export_id, day_one)
    finally:
        app.stop()


def changed(services: Services, args, export_id: str, day_one: ProfileSet) -> None:
    next_day = NextDay(day_one)
    write_ci_export(services.container(), {"Mirror": next_day}, partitions=3, when=DAY_ONE + timedelta(days=1))
    n = day_one.count
    changed_rows = sum(1 for i in range(n) if NextDay.changes(i))
    leavers = sum(1 for i in range(n) if not NextDay.stays(i))
    app = AppProcess.start(services, workers=args.workers, profile=args.profile)
    try:
        api = Api(app.url, services)
        mark, cpu = api.log_mark(), app.cpu_seconds()
        run, wall = api.run(export_id)
        log = api.requests_since(mark, "mirror")
        cpu, peak = app.cpu_seconds() - cpu, app.peak_rss_mb()
    finally:
        app.stop()
    assert run["status"] == "succeeded", run
    counts = run["counts"]
    upserts = [r for r in log if (r["method"], r["path"]) == ("POST", "/batches")]
    tags = [r for r in log if r["kind"] == "tags"]
    reads = [r for r in log if r["method"] == "GET" and r["path"].startswith("/batches")]
    other = len(log) - len(upserts) - len(tags) - len(reads)
    ideal_upserts, ideal_tags = math.ceil(changed_rows / 100), math.ceil(leavers / 250)
    ideal_reads = math.ceil(ideal_upserts / 10)
    ideal = ideal_upserts + ideal_tags + ideal_reads + 1
    writes, ideal_writes = len(log) - len(reads), ideal - ideal_reads
    print(f"next day: {next_day.count:,} rows, {changed_rows:,} changed, {leavers:,} left; run: updated "
          f"{counts.get('updated', 0):,}, added {counts.get('added', 0):,}, unchanged {counts['unchanged']:,}, "
          f"untagged {run.get('untagged', 0):,}")
    line("  requests / ideal", f"{len(log):,} / {ideal:,} = {len(log) / ideal:.2f}", "<= 1.1", len(log) <= 1.1 * ideal)
    line("  upserts, tag calls, status reads, other", f"{len(upserts):,}, {len(tags):,}, {len(reads):,}, {other:,}",
         f"{ideal_upserts}, {ideal_tags}, {ideal_reads}, 1", None)
    line("  requests / ideal without status reads", f"{writes:,} / {ideal_writes:,} = {writes / ideal_writes:.2f}",
         "<= 1.1", writes <= 1.1 * ideal_writes)
    line("  wall, app CPU, peak memory", f"{wall:.1f} s, {cpu:.1f} s, {peak:.0f} MB", "", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--profiles", type=int, default=200_000, help="profiles of the first run")
    parser.add_argument("--export-profiles", type=int, default=1_000_000, help="profiles of the reruns' export")
    parser.add_argument("--window-seconds", type=float, default=15.0,
                        help="the sandbox's rate-limit window (Omnisend: 60)")
    parser.add_argument("--workers", type=int, default=4, help="queue invocations at once")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the app's planning and finishing steps into DIR")
    args = parser.parse_args()
    scenarios = set(args.scenarios.split(","))
    if not scenarios <= set(SCENARIOS):
        parser.error(f"--scenarios takes {', '.join(SCENARIOS)}")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    services = start_services("bench-sync", window_seconds=args.window_seconds)
    try:
        if "first" in scenarios:
            first_run(services, args)
        if scenarios & {"unchanged", "changed"}:
            reruns(services, args, scenarios)
    finally:
        services.stop()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
