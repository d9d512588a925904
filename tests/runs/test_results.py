"""A chunk's result and rejects file, and the run's rejects CSV (shared/runs/results.py)."""
from __future__ import annotations

from shared import runs
from shared.rejects import Reject, RejectReason
from shared.runs import results
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
