"""Ingestion benchmark: a 1,000,000-row Customer Insights segment in Azurite, planned and read.

    python -m bench.ingest [--rows 1000000] [--partitions 3] [--rows-per-chunk 1000] [--quote-all]
                           [--custom-fields [--mapping default|extended]]

--custom-fields adds the sample's custom columns (loyalty tier, birthdate, gender, preferred stores)
and maps them with EXTENDED_MAPPING (birthdate, gender and four typed custom properties);
`--mapping default` reads the same wider export with the plain mapping, for comparison.

Each phase runs in its own child process so its peak memory (max RSS) is its own:
  write     generate the CI-layout export and stream it to Azurite (stage/commit blocks)
  plan      plan_chunks over every partition (ranged downloads, one pass)
  read+map  for every chunk, on one core: read_chunk, map_row, run-wide duplicate set of email_key,
            contacts serialised as Omnisend batch bodies (100 items, the client's own encoder),
            rejects as CSV; the garbage collector tuned as in the workers
Times are wall clock (Azurite runs beside us, serving the downloads) and this process's CPU time.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import time
from datetime import datetime, timezone

from shared.settings import Settings
from shared.storage import container
from tools.azurite import start_azurite

WHEN = datetime(2024, 1, 31, 23, 45, tzinfo=timezone.utc)
BATCH_ITEMS = 100


def _container(connection_string: str):
    return container(Settings.from_env({"AzureWebJobsStorage": connection_string}), "segments")


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def phase_write(connection_string: str, rows: int, partitions: int, quote_all: bool, custom_fields: bool) -> dict:
    from tools.sample_export import generate_profiles, write_ci_export

    client = _container(connection_string)
    client.create_container()
    started = time.perf_counter()
    profiles = generate_profiles(rows, quote_all=quote_all, custom_fields=custom_fields)
    write_ci_export(client, {"Bench": profiles}, partitions=partitions, when=WHEN)
    return {"seconds": time.perf_counter() - started, "max_rss_mb": _max_rss_mb()}


def phase_plan(connection_string: str, rows_per_chunk: int) -> dict:
    from shared.segments import get_segment, plan_chunks

    client = _container(connection_string)
    segment = get_segment(client, "Bench")
    wall, cpu = time.perf_counter(), time.process_time()
    chunks = [chunk.to_dict() for chunk in plan_chunks(client, segment, rows_per_chunk)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    size = sum(p.size for p in segment.partitions)
    return {"chunks": chunks, "bytes": size, "rows": sum(c["rowCount"] for c in chunks), "seconds": wall,
            "cpu_seconds": cpu, "max_rss_mb": _max_rss_mb()}


def phase_read_map(connection_string: str, chunk_dicts: list[dict], extended: bool) -> dict:
    from shared.mapping import FieldMapping, MappedContact, bind, email_key, map_row
    from shared.omnisend import contact_batch_body, encode_body
    from shared.rejects import rejects_to_csv
    from shared.segments import Chunk, read_chunk
    from shared.tuning import tune_garbage_collector
    from tools.sample_export import DEFAULT_MAPPING, EXTENDED_MAPPING

    tune_garbage_collector()  # as function_app.py sets up the workers

    client = _container(connection_string)
    chunks = [Chunk.from_dict(d) for d in chunk_dicts]
    mapping = FieldMapping.from_dict(EXTENDED_MAPPING if extended else DEFAULT_MAPPING)
    bound = bind(mapping, chunks[0].columns, chunks[0].segment)
    seen: set[int] = set()
    rows = sent = rejected = duplicates = body_bytes = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for chunk in chunks:
        items, rejects = [], []
        for row in read_chunk(client, chunk):
            rows += 1
            result = map_row(bound, row)
            if isinstance(result, MappedContact):
                key = email_key(result.email)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                items.append(result.contact)
            else:
                rejects.append(result.reject(chunk.segment, chunk.blob, row.number))
        for start in range(0, len(items), BATCH_ITEMS):
            body_bytes += len(encode_body(contact_batch_body(items[start:start + BATCH_ITEMS]), "bench"))
        sent += len(items)
        rejected += len(rejects)
        rejects_to_csv(rejects, header=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"rows": rows, "sent": sent, "rejected": rejected, "duplicates": duplicates, "body_bytes": body_bytes,
            "seconds": wall, "cpu_seconds": cpu, "max_rss_mb": _max_rss_mb()}


def reference_loop_seconds() -> float:
    """CPU seconds of a fixed pure-Python loop (10 million additions): the speed this shared virtual
    machine gave Python during the run, to compare runs measured on different days (about 0.85 s
    on its fast days, 1.7 s on its slow ones)."""
    started, total = time.process_time(), 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - started


def run_in_child(function, *args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rows-per-chunk", type=int, default=1000)
    parser.add_argument("--quote-all", action="store_true", help="quote every field (some CDM writers do)")
    parser.add_argument("--custom-fields", action="store_true",
                        help="add the custom columns (tier, birthdate, gender, stores) and map them")
    parser.add_argument("--mapping", choices=("default", "extended"),
                        help="DEFAULT_MAPPING or EXTENDED_MAPPING (default: extended with --custom-fields)")
    args = parser.parse_args()
    extended = (args.mapping or ("extended" if args.custom_fields else "default")) == "extended"
    if extended and not args.custom_fields:
        parser.error("--mapping extended needs --custom-fields (the columns it maps)")

    azurite = start_azurite(f"bench-{os.getpid()}")
    try:
        cs = azurite.connection_string
        written = run_in_child(phase_write, cs, args.rows, args.partitions, args.quote_all, args.custom_fields)
        print(f"write     {args.rows:,} rows in {args.partitions} partitions"
              f"{' with custom columns' if args.custom_fields else ''}: {written['seconds']:.1f} s, "
              f"peak {written['max_rss_mb']:.0f} MB")
        plan = run_in_child(phase_plan, cs, args.rows_per_chunk)
        mb = plan["bytes"] / 1e6
        print(f"plan      {mb:.0f} MB, {plan['rows']:,} rows, {len(plan['chunks'])} chunks: "
              f"{mb / plan['seconds']:.0f} MB/s wall ({plan['rows'] / plan['seconds']:,.0f} rows/s), "
              f"{mb / plan['cpu_seconds']:.0f} MB/s per core (CPU), peak {plan['max_rss_mb']:.0f} MB")
        largest = max(len(json.dumps(c).encode()) for c in plan["chunks"])
        print(f"          largest chunk message {largest} bytes")
        read = run_in_child(phase_read_map, cs, plan["chunks"], extended)
        print(f"read+map  ({'extended' if extended else 'default'} mapping) "
              f"{read['rows']:,} rows -> {read['sent']:,} contacts, {read['rejected']:,} rejects, "
              f"{read['duplicates']:,} duplicates, {read['body_bytes'] / 1e6:.0f} MB of batch bodies: "
              f"{read['rows'] / read['seconds']:,.0f} rows/s wall, {read['rows'] / read['cpu_seconds']:,.0f} rows/s "
              f"per core (CPU), peak {read['max_rss_mb']:.0f} MB")
        print(f"machine   reference loop {reference_loop_seconds():.2f} s of CPU (10 million additions)")
    finally:
        azurite.stop(remove_data=True)


if __name__ == "__main__":
    main()
