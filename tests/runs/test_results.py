"""A chunk's result and rejects file, and the run's rejects CSV (shared/runs/results.py)."""
from __future__ import annotations

from shared import mapping, runs, sync
from shared.rejects import Reject, RejectReason
from shared.runs import paths, results, untag
from shared.runs.model import Counts
from shared.runs.store import RunStore

HEADER = "segment,partition,row,reason,detail,email\r\n"


def reject(row: int, reason=RejectReason.MISSING_EMAIL) -> Reject:
    return Reject("Vip", "Vip.csv", row, reason, "the email column is empty")


def a_run(settings, export_of, segments_container) -> str:
    segments_container.upload_blob("Vip.csv", b"PrimaryEmail\r\n")
    return runs.start_run(settings, export_of(["Vip"]), "manual").run_id


def test_the_rejects_file_of_the_result_on_record_is_the_one_listed(api_settings, export_of, segments_container):
    run_id = a_run(api_settings, export_of, segments_container)
    store = RunStore(api_settings)

    assert results.record(store, run_id, results.ChunkResult(1, Counts(2, 0, 2, 0)), [reject(3), reject(4)])
    # A second delivery of the chunk with other rejects: its result loses, its file is not listed.
    assert not results.record(store, run_id, results.ChunkResult(1, Counts(2, 0, 1, 0)), [reject(9)])
    assert results.record(store, run_id, results.ChunkResult(0, Counts(1, 0, 1, 0)), [reject(1)])
    assert results.record(store, run_id, results.ChunkResult(2, Counts(5, 5, 0, 0)), [])
    store.write(f"runs/{run_id}/rejects/000002-0123456789ab.csv", (HEADER + "orphan\r\n").encode())

    text = runs.rejects_csv(api_settings, run_id).decode()

    assert text.startswith(HEADER) and text.count(HEADER) == 1
    assert [line.split(",")[2] for line in text.splitlines()[1:]] == ["1", "3", "4"]


def test_the_rejects_csv_is_streamed_chunk_by_chunk(api_settings, export_of, segments_container):
    run_id = a_run(api_settings, export_of, segments_container)
    store = RunStore(api_settings)
    for seq in range(3):
        results.record(store, run_id, results.ChunkResult(seq, Counts(1, 0, 1, 0)), [reject(seq + 1)])

    pieces = list(runs.iter_rejects_csv(api_settings, run_id))

    assert pieces[0] == HEADER.encode() and len(pieces) == 4
    assert b"".join(pieces) == runs.rejects_csv(api_settings, run_id)


def test_a_header_split_across_pieces_is_dropped():
    pieces = [HEADER[:5].encode(), HEADER[5:].encode() + b"a,b", b",c\r\n"]
    assert b"".join(results._without_header(iter(pieces))) == b"a,b,c\r\n"


def test_one_listing_names_the_change_log_of_every_result_on_record(api_settings, export_of, segments_container):
    run_id = a_run(api_settings, export_of, segments_container)
    store = RunStore(api_settings)
    log = [sync.encode_changes([sync.ContactChange(mapping.email_key(e), 7, email=e)]) for e in ("a@x.com", "b@x.com")]
    assert results.record(store, run_id, results.ChunkResult(0, Counts(1, 1, 0, 0)), [], log[0])
    assert not results.record(store, run_id, results.ChunkResult(0, Counts(1, 1, 0, 0)), [], b"a duplicate's log")
    assert results.record(store, run_id, results.ChunkResult(1, Counts(1, 0, 1, 0)), [reject(2)])
    # A result of before its metadata named its change log: the log is found from the result.
    store.write(paths.changes(run_id, 2, "0123456789ab"), log[1])
    legacy = results.ChunkResult(2, Counts(1, 1, 0, 0), changes="0123456789ab")
    store.write_json(paths.result(run_id, 2), legacy.to_dict())

    tokens = results.change_tokens(store, run_id)
    logs = untag._chunk_logs(store, runs.get_run(api_settings, run_id), [0, 1, 2, 3])

    assert sorted(tokens) == [0, 1, 2] and (tokens[1], tokens[2]) == (results.NO_REJECTS, None)
    assert [change.email for found in logs for change in found] == ["a@x.com", "b@x.com"]
