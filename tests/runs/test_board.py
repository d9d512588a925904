"""The batch board (shared/runs/board.py): its decisions as pure functions, and one board shared by
several chunks against Azurite and the Omnisend sandbox."""
from __future__ import annotations

import time

import pytest

from shared.omnisend import MAX_PAGE_SIZE, Batch
from shared.ratelimit import Budget
from shared.runs import board as b, paths
from shared.runs.store import RunStore


def listed(batch_id: str, status: str = "finished", errors: int = 0) -> Batch:
    return Batch(batch_id, status, 100, 100 - errors if status == "finished" else 50, errors)


def test_reads_wait_longer_while_some_chunk_is_creating_batches():
    board = b.Board()
    b.register(board, "chunk-1", ["x"], now=100.0)
    assert b.read_due(board, 100.0)  # never read before
    b.record(board, "chunk-1", {}, [], now=100.0)
    b.announce(board, "chunk-2", 40, now=100.0)  # creating for 80 s
    assert b.busy(board, 101.0) and not b.read_due(board, 101.0)
    # the next read is a minute away, but a waiting chunk looks again sooner: the connection may turn idle
    assert b.wait_seconds(board, 101.0) == b.MAX_WAIT_SECONDS < b.BUSY_READ_SECONDS - 1
    assert not b.read_due(board, 100.0 + b.BUSY_READ_SECONDS - 0.1)
    assert b.read_due(board, 100.0 + b.BUSY_READ_SECONDS)
    b.register(board, "chunk-2", ["y"], now=102.0)  # done creating: the connection is idle
    assert not b.busy(board, 102.0) and b.read_due(board, 100.0 + b.IDLE_READ_SECONDS)


def test_a_busy_read_is_due_once_the_wanted_batches_fill_a_page():
    board = b.Board(read_at=100.0)
    b.announce(board, "chunk-0", 40, now=100.0)
    for n in range(b.READ_FILL // 10 - 1):
        b.register(board, f"chunk-{n + 1}", [f"{n}-{i}" for i in range(10)], now=101.0)
    assert len(board.wanted) == b.READ_FILL - 10 and not b.read_due(board, 102.0)
    b.register(board, "chunk-last", [f"last-{i}" for i in range(10)], now=102.0)
    assert b.busy(board, 102.0) and b.read_due(board, 102.0)
    # with the batches created meanwhile, one page still lists every wanted batch
    assert b.READ_FILL + 4 * 10 <= MAX_PAGE_SIZE
    b.take_lease(board, "chunk-last", now=102.0)
    assert not b.read_due(board, 102.5)  # one reader at a time


def test_a_chunk_in_its_runs_tail_has_a_read_made_by_a_smaller_page():
    # so that few chunks are left to settle, and finish, after the run's last upsert
    tail = b.ReadPace.of(Budget(400), tail=True)
    assert tail == b.ReadPace(fill=b.TAIL_READ_FILL) and b.TAIL_READ_FILL < b.READ_FILL
    board = b.Board(read_at=100.0)
    b.announce(board, "chunk-0", 40, now=100.0)
    for n in range(b.TAIL_READ_FILL // 10):
        b.register(board, f"chunk-{n + 1}", [f"{n}-{i}" for i in range(10)], now=101.0)
    assert len(board.wanted) == b.TAIL_READ_FILL and b.busy(board, 102.0)
    assert not b.read_due(board, 102.0) and b.read_due(board, 102.0, tail)
    board.wanted.popitem()
    assert not b.read_due(board, 102.0, tail)


def test_reads_are_spaced_less_on_a_larger_budget_or_a_shorter_window():
    assert b.ReadPace.of(Budget(400)) == b.ReadPace()
    assert b.ReadPace.of(Budget(800)).busy == b.BUSY_READ_SECONDS / 2
    assert b.ReadPace.of(Budget(1_000_000)) == b.ReadPace(busy=b.IDLE_READ_SECONDS, tagging=b.MIN_TAG_READ_SECONDS)
    # 400 per 15 s is 1,600 a minute: a benchmark compressing the window compresses the pace with it
    assert b.ReadPace.of(Budget(400, window_seconds=15.0)) == b.ReadPace(busy=15.0, tagging=0.75)
    board = b.Board(read_at=100.0)
    b.register(board, "chunk-1", ["x"], now=100.0)
    b.announce(board, "chunk-2", 10, now=100.0)
    assert not b.read_due(board, 106.0) and b.read_due(board, 106.0, b.ReadPace(busy=5.0))


def test_batches_a_chunk_will_tag_are_read_sooner_until_they_settle():
    board = b.Board(read_at=100.0)
    b.announce(board, "chunk-2", 10, now=100.0)
    b.register(board, "chunk-1", ["x"], now=100.0)
    assert not b.read_due(board, 100.0 + b.TAG_READ_SECONDS)  # nobody tags: the busy pace
    b.register(board, "chunk-3", ["y", "z"], now=100.0, urgent=True)
    assert board.urgent == {"y", "z"}
    assert not b.read_due(board, 100.0 + b.TAG_READ_SECONDS - 0.1) and b.read_due(board, 100.0 + b.TAG_READ_SECONDS)
    assert b.wait_seconds(board, 100.0) == b.TAG_READ_SECONDS
    b.take_lease(board, "chunk-3", now=103.0)
    b.record(board, "chunk-3", {"y": listed("y"), "z": listed("z", "inProgress")}, [], now=103.5)
    assert board.urgent == {"z"}  # still running: still urgent
    b.record(board, "chunk-3", {"z": listed("z")}, [], now=107.0)
    assert not board.urgent and not b.read_due(board, 107.0 + b.TAG_READ_SECONDS)
    b.register(board, "chunk-4", ["w"], now=107.0, urgent=True)
    assert b.Board.from_dict(board.to_dict()) == board


def test_an_announcement_lapses_and_nothing_wanted_needs_no_read():
    board = b.Board()
    b.announce(board, "chunk-1", 1, now=0.0)
    assert not b.read_due(board, 1000.0)  # nothing wanted
    b.register(board, "chunk-2", ["x"], now=0.0)
    assert b.busy(board, b.MIN_CREATING_SECONDS - 1) and not b.busy(board, b.MIN_CREATING_SECONDS + 1)
    b.announce(board, "chunk-1", 10, now=0.0)  # ten batches to create: a longer announcement
    assert b.busy(board, 10 * b.CREATING_SECONDS - 1) and not b.busy(board, 10 * b.CREATING_SECONDS + 1)
    b.retire(board, "chunk-1")  # it was deferred
    assert not b.busy(board, 1.0)


def test_one_reader_at_a_time_until_its_lease_runs_out():
    board = b.Board()
    b.register(board, "chunk-1", ["x"], now=0.0)
    b.take_lease(board, "chunk-1", now=0.0)
    assert not b.read_due(board, 5.0) and b.wait_seconds(board, 5.0) == 1.0
    assert b.read_due(board, b.LEASE_SECONDS + 0.1)  # the reader died: another reads
    b.release(board, "chunk-2")  # not the holder: nothing changes
    assert board.reader == "chunk-1"


def test_a_read_records_settled_batches_keeps_running_ones_and_forgets_old_outcomes():
    board = b.Board(done={"old": ["finished", 0, 1, 1, 150.0]})
    b.register(board, "chunk-1", ["a", "c", "d"], now=200.0)
    b.register(board, "chunk-2", ["b", "old"], now=200.0)  # an outcome on record is not wanted again
    b.take_lease(board, "chunk-1", now=200.0)
    found = {"a": listed("a"), "b": listed("b", "stopped"), "c": listed("c", "inProgress"),
             "z": listed("z", errors=2)}  # z: a batch of a chunk that has not registered it yet
    b.record(board, "chunk-1", found, gone=["d"], now=201.0)

    assert set(board.wanted) == {"c"} and board.reader is None and board.read_at == 201.0
    outcomes = b.outcomes(board, ["a", "b", "c", "d", "old", "z"])
    assert {k: v.status for k, v in outcomes.items()} == {"a": "finished", "b": "stopped", "d": b.GONE,
                                                          "old": "finished", "z": "finished"}
    assert outcomes["z"] == listed("z", errors=2)
    b.record(board, "chunk-1", {}, [], now=150.0 + b.KEEP_SECONDS + 0.5)
    assert "old" not in board.done and "a" in board.done


def test_batches_no_page_showed_for_a_while_are_read_on_their_own_a_few_at_a_time():
    board = b.Board(wanted={f"w{i}": float(i) for i in range(10)} | {"new": 100.0})
    late = b.single_reads(board, listed=["w0"], now=b.SINGLE_READ_AFTER + 20)
    assert late == ["w1", "w2", "w3", "w4", "w5"][:b.MAX_SINGLE_READS]


def test_a_board_survives_its_json_form():
    board = b.Board()
    b.announce(board, "c", 3, 1.0)
    b.register(board, "d", ["x"], 2.0)
    b.record(board, "d", {"x": listed("x", errors=3)}, [], 3.0)
    assert b.Board.from_dict(board.to_dict()) == board


@pytest.fixture()
def store(api_settings):
    found = RunStore(api_settings)
    found.ensure()
    return found


def test_one_list_request_settles_the_batches_of_many_chunks(store, omnisend_client, sandbox):
    """Three chunks of one connection wait for 12 batches: one GET /batches page answers all of them."""
    chunks = {}
    for n in range(3):
        board = b.BatchBoard(store, "conn-1", f"chunk-{n}", omnisend_client)
        board.creating(4)
        ids = [omnisend_client.create_contact_batch([{"identifiers": [{"type": "email", "id": f"c{n}-{i}@x.com"}],
                                                      "sendWelcomeMessage": False}]) for i in range(4)]
        chunks[n] = (board, ids)
    finished(sandbox, [i for _, ids in chunks.values() for i in ids])
    before = len(sandbox.request_log())

    answers = {n: board.outcomes(ids) for n, (board, ids) in chunks.items()}

    reads = [r for r in sandbox.request_log()[before:] if r.method == "GET"]
    assert [(r.path, r.query["offset"]) for r in reads] == [("/batches", "0")]
    for n, (found, delay) in answers.items():
        assert set(found) == set(chunks[n][1]) and {s.status for s in found.values()} == {"finished"}


def finished(sandbox, ids: list[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(sandbox.batches()[i]["status"] != "finished" for i in ids):
        assert time.monotonic() < deadline, "the sandbox did not finish the batches"
        time.sleep(0.05)


def list_reads(sandbox) -> int:
    return len([r for r in sandbox.request_log() if r.path == "/batches" and r.method == "GET"])


@pytest.mark.sandbox(batch_step_seconds=1.0)
def test_while_batches_are_being_created_a_waiting_chunk_comes_back_without_a_read(store, omnisend_client,
                                                                                   sandbox):
    board = b.BatchBoard(store, "conn-2", "chunk-a", omnisend_client)
    board.creating(4)
    first = omnisend_client.create_contact_batch([{"identifiers": [{"type": "email", "id": "a@x.com"}]}])
    assert board.outcomes([first]) == ({}, 1.0)  # read at once (never read before): still pending
    assert list_reads(sandbox) == 1
    b.BatchBoard(store, "conn-2", "chunk-b", omnisend_client).creating(10)  # reads now wait BUSY_READ_SECONDS

    found, delay = board.outcomes([first])

    assert list_reads(sandbox) == 1 and found == {} and delay == b.MAX_WAIT_SECONDS  # no read: it looks again
    finished(sandbox, [first])
    store.write_json(paths.batch_board("conn-2"), {**store.read_json(paths.batch_board("conn-2"))[0],
                                                   "creating": {}, "readAt": 0})  # creation over, long ago
    found, _ = board.outcomes([first])
    assert list_reads(sandbox) == 2 and found[first].status == "finished"


def test_a_chunk_yet_to_upsert_is_held_while_a_window_and_a_half_of_tag_calls_is_owed():
    tags = Budget(60)  # a call a second
    board = b.Board()
    for n in range(22):  # 22 chunks owe 4 calls each: 88 calls, less than 1.5 windows' 90
        b.announce(board, f"chunk-{n}", 10, now=0.0, tag_calls=4, chunk=("run-1", n))
    assert b.held_for_tags(board, 1.0, ("run-1", 22), tags) == 0.0
    b.announce(board, "chunk-22", 10, now=1.0, tag_calls=4, chunk=("run-1", 22))
    assert board.admitted["run-1"][0] == 22
    # 92 owed: the next comes back when they would be down to a window's 60, 32 s at a call a second
    assert b.held_for_tags(board, 2.0, ("run-1", 23), tags) == 32.0
    # the run's chunks 23-27 are held too, and let in first: 4 more calls each
    assert b.held_for_tags(board, 2.0, ("run-1", 28), tags) == 32.0 + 5 * 4
    assert b.held_for_tags(board, 2.0, ("run-1", 10_000), tags) == b.MAX_HOLD_SECONDS  # a hold is bounded
    b.tagged(board, "chunk-0")  # made its calls: 88 owed
    assert b.held_for_tags(board, 3.0, ("run-1", 23), tags) == 0.0
    b.announce(board, "chunk-0", 10, now=3.0, tag_calls=4, chunk=("run-1", 0))
    assert b.held_for_tags(board, 4.0, ("run-1", 23), tags) > 0
    # another run on the connection (or what a cancelled one left) does not hold this one
    assert b.held_for_tags(board, 4.0, ("run-2", 0), tags) == 0.0
    assert b.held_for_tags(board, b.TAGGING_SECONDS + 1.0, ("run-1", 23), tags) == 0.0  # announcements lapse
    assert b.Board.from_dict(board.to_dict()) == board
