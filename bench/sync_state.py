"""Sync state benchmark: a 1,000,000-contact export's state built, stored, loaded, diffed and advanced.

    python -m bench.sync_state [--contacts 1000000] [--chunk 1000]

No storage service: the stored form goes through a temporary file, read back in 4 MiB chunks as a blob
download would be. Times are this process's CPU time (the work is CPU-bound; on a busy machine the
wall clock says more about the neighbours). Each phase runs in its own child process, so its peak
memory (max RSS, Python included) is its own:
  first run   the finisher of a first full run: 1,000 chunk change logs (one upsert and one tag per
              contact) decoded, merged in key order, folded into the state, and encoded
  load        the stored state decoded from its chunks, plus the bucket index of its keys
  classify    the next day's 1,000,000 rows (1% changed fields, 1% new, 1% of the old ones gone)
              classified against it: classify() alone, and the fingerprint of each body
  finish      the next day's finisher: leavers of the segment found (plan_removals), their emails
              read, and the next state made from the day's changes (1% upserts, 1% new, 1% removed);
              and a rerun's finisher with nothing changed (the next state and its stored form)
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import struct
import tempfile
import time
from array import array

SEED = 7
TAG = "HighValue"
_FIRST = ("anna", "ben", "carla", "dovydas", "eva", "fatima", "greta", "hiro", "ines", "jonas", "kaito",
          "lena", "mateo", "nora", "oskar", "priya", "quinn", "rasa", "sofia", "tomas", "uma", "viktor",
          "wei", "ximena", "yusuf", "zoe")
_LAST = ("smith", "muller", "kowalski", "garcia", "jonaitis", "nguyen", "obrien", "brown", "kim", "rossi",
         "dubois", "novak", "silva", "ivanova", "larsen", "haddad", "tanaka", "osei", "moreau", "weber")
_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "gmx.de", "web.de",
            "orange.fr", "libero.it", "mail.ru", "seznam.cz", "inbox.lt", "shop-example.com", "contoso.com",
            "fabrikam.co.uk", "example.org")
_CITIES = (("Vilnius", "LT"), ("Berlin", "DE"), ("Paris", "FR"), ("Oslo", "NO"), ("Austin", "US"), ("", ""))
_MASK = (1 << 64) - 1


def _mix(i: int, salt: int = 0) -> int:
    z = ((i + 1) * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def person(i: int, day: int = 1) -> tuple[str, dict]:
    """Contact i as the export sends it on `day` (day 2: every 100th has a new first name)."""
    from shared.mapping import contact_request

    r = _mix(i, SEED)
    first, last = _FIRST[r % len(_FIRST)], _LAST[(r >> 8) % len(_LAST)]
    email = f"{first}.{last}{(r >> 16) % 10_000}.{i}@{_DOMAINS[(r >> 32) % len(_DOMAINS)]}"
    city, country = _CITIES[(r >> 40) % len(_CITIES)]
    name = first.title() if not (day == 2 and i % 100 == 1) else first.title() + "-Marie"
    return email, contact_request(email, firstName=name, lastName=last.title(), city=city, country=country)


def day_two(count: int) -> range:
    """Day 2's contact numbers: every 100th of day 1 (i % 100 == 0) is gone, 1% new ones join."""
    return range(0, count + count // 100)


def in_day_two(i: int, count: int) -> bool:
    return i >= count or i % 100 != 0


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _read_chunks(path: str, size: int = 4 << 20):
    with open(path, "rb") as f:
        while True:
            chunk = f.read(size)
            if not chunk:
                return
            yield chunk


# --------------------------------------------------------------------------- phases (child processes)


def phase_setup(folder: str, count: int, chunk: int) -> dict:
    """Chunk change logs of a first full run, as its workers would write them (not timed)."""
    from shared.mapping import email_key
    from shared.sync import ContactChange, encode_changes, fingerprint

    logs = 0
    with open(os.path.join(folder, "logs.bin"), "wb") as out:
        for start in range(0, count, chunk):
            changes = []
            for i in range(start, min(start + chunk, count)):
                email, body = person(i)
                changes.append(ContactChange(email_key(email), fingerprint(body), tagged=1, email=email))
            data = encode_changes(changes)
            out.write(struct.pack("<I", len(data)) + data)
            logs += 1
    return {"logs": logs, "log_bytes": os.path.getsize(os.path.join(folder, "logs.bin"))}


def phase_first_run(folder: str) -> dict:
    from shared.sync import decode_changes, merge_changes, next_state, run_tag_table

    started = time.process_time()
    logs = []
    with open(os.path.join(folder, "logs.bin"), "rb") as f:
        while header := f.read(4):
            logs.append(decode_changes(f.read(struct.unpack("<I", header)[0])))
    state = next_state(None, run_tag_table((), [TAG]), merge_changes(*logs), run_id="day-1",
                       written_at="2026-03-19T02:00:00Z", full_at="2026-03-19T02:00:00Z")
    folded = time.process_time()
    chunks = state.to_chunks()
    with open(os.path.join(folder, "state.bin"), "wb") as out:
        out.writelines(chunks)
    done = time.process_time()
    return {"contacts": len(state), "bytes": sum(map(len, chunks)), "fold_seconds": folded - started,
            "encode_seconds": done - folded, "max_rss_mb": _max_rss_mb()}


def phase_load(folder: str) -> dict:
    from shared.sync import SyncState

    started = time.process_time()
    state = SyncState.read(_read_chunks(os.path.join(folder, "state.bin")))
    loaded = time.process_time()
    state.index  # noqa: B018 (built on first use)
    indexed = time.process_time()
    columns = sum(c.itemsize * len(c) for c in (state.keys, state.fingerprints, state.masks, state.email_lengths))
    return {"contacts": len(state), "load_seconds": loaded - started, "index_seconds": indexed - loaded,
            "column_mb": columns / 1e6, "max_rss_mb": _max_rss_mb()}


def phase_classify(folder: str, count: int) -> dict:
    from shared.mapping import email_key
    from shared.sync import RowClass, SyncState, classifier, fingerprint

    state = SyncState.read(_read_chunks(os.path.join(folder, "state.bin")))
    keys, fingerprints = array("Q"), array("Q")
    sample_bodies = []
    for i in day_two(count):
        if not in_day_two(i, count):
            continue
        email, body = person(i, day=2)
        keys.append(email_key(email))
        fingerprints.append(fingerprint(body))
        if len(sample_bodies) < 50_000:
            sample_bodies.append(body)
    classify = classifier(state, TAG)
    classes = dict.fromkeys(RowClass, 0)
    started = time.process_time()
    for key, fp in zip(keys, fingerprints):
        classes[classify(key, fp)] += 1
    classify_seconds = time.process_time() - started
    started = time.process_time()
    for body in sample_bodies:
        fingerprint(body)
    fingerprint_us = (time.process_time() - started) / len(sample_bodies) * 1e6
    return {"rows": len(keys), "classes": {c.value: n for c, n in classes.items()},
            "classify_seconds": classify_seconds, "fingerprint_us": fingerprint_us, "max_rss_mb": _max_rss_mb()}


def phase_finish(folder: str, count: int) -> dict:
    from shared.mapping import email_key
    from shared.sync import (ContactChange, RowClass, SyncState, classifier, fingerprint, next_state,
                             plan_removals, run_tag_table)

    state = SyncState.read(_read_chunks(os.path.join(folder, "state.bin")))
    started = time.process_time()
    unchanged = next_state(state, state.tags, [], run_id="rerun", written_at="2026-03-19T03:00:00Z")
    rerun_size = sum(map(len, unchanged.to_chunks()))
    rerun_seconds = time.process_time() - started
    members = array("Q", sorted(email_key(person(i, 2)[0]) for i in day_two(count) if in_day_two(i, count)))
    classify = classifier(state, TAG)
    changes = []
    for i in day_two(count):
        if i < count and i % 100 not in (1, 2) or not in_day_two(i, count):
            continue  # only the changed (i % 100 == 1) and new rows are sent; i % 100 == 2: a control
        email, body = person(i, 2)
        key, fp = email_key(email), fingerprint(body)
        if classify(key, fp) in (RowClass.NEW, RowClass.CHANGED):
            changes.append(ContactChange(key, fp, tagged=1 if i >= count else 0, email=email))
    started = time.process_time()
    plan = plan_removals(state, {TAG: TAG}, {TAG: members}, max_removal_percent=20)
    planned = time.process_time()
    [removal] = plan.to_apply
    leavers = list(plan.emails(state, removal))
    read = time.process_time()
    run_tags = run_tag_table(state.tags, [TAG])
    changes += [ContactChange(state.keys[p], untagged=1) for p in removal.positions]
    changes += [ContactChange(state.keys[p], forget=True) for p in plan.departed]
    changes.sort(key=lambda c: c.key)
    before_fold = time.process_time()
    nxt = next_state(state, run_tags, changes, run_id="day-2", written_at="2026-03-20T02:00:00Z")
    folded = time.process_time()
    size = sum(map(len, nxt.to_chunks()))
    encoded = time.process_time()
    return {"leavers": len(leavers), "changes": len(changes), "contacts": len(nxt), "bytes": size,
            "rerun_seconds": rerun_seconds, "rerun_bytes": rerun_size,
            "plan_seconds": planned - started, "emails_seconds": read - planned,
            "fold_seconds": folded - before_fold, "encode_seconds": encoded - folded, "max_rss_mb": _max_rss_mb()}


def run_in_child(function, *args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=1000, help="contacts per chunk change log")
    args = parser.parse_args()
    n = args.contacts
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as folder:
        setup = run_in_child(phase_setup, folder, n, args.chunk)
        print(f"setup     {setup['logs']:,} chunk change logs of a first full run, "
              f"{setup['log_bytes'] / n:.1f} bytes a contact")
        first = run_in_child(phase_first_run, folder)
        print(f"first run {first['contacts']:,} contacts: merge+fold {first['fold_seconds']:.1f} s, encode "
              f"{first['encode_seconds']:.1f} s; stored {first['bytes'] / 1e6:.1f} MB = "
              f"{first['bytes'] / first['contacts']:.1f} bytes a contact; peak {first['max_rss_mb']:.0f} MB")
        load = run_in_child(phase_load, folder)
        print(f"load      {load['contacts']:,} contacts from 4 MiB chunks: {load['load_seconds']:.2f} s, index "
              f"{load['index_seconds']:.2f} s; columns {load['column_mb']:.0f} MB; peak {load['max_rss_mb']:.0f} MB")
        diff = run_in_child(phase_classify, folder, n)
        per_row = diff["classify_seconds"] / diff["rows"] * 1e6
        print(f"classify  {diff['rows']:,} rows {diff['classes']}: {diff['rows'] / diff['classify_seconds']:,.0f} "
              f"rows/s ({per_row:.2f} us a row); fingerprint {diff['fingerprint_us']:.2f} us a row; both "
              f"{1e6 / (per_row + diff['fingerprint_us']):,.0f} rows/s; peak {diff['max_rss_mb']:.0f} MB")
        finish = run_in_child(phase_finish, folder, n)
        print(f"rerun     unchanged export: next state and its stored form in {finish['rerun_seconds']:.2f} s "
              f"({finish['rerun_bytes'] / 1e6:.1f} MB)")
        print(f"finish    {finish['leavers']:,} leavers found in {finish['plan_seconds']:.2f} s, their emails in "
              f"{finish['emails_seconds']:.2f} s; next state from {finish['changes']:,} changes in "
              f"{finish['fold_seconds']:.2f} s, encoded in {finish['encode_seconds']:.2f} s: {finish['contacts']:,} "
              f"contacts, {finish['bytes'] / finish['contacts']:.1f} bytes a contact; peak {finish['max_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
