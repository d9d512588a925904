"""Packing sparse chunks: adjacent chunks of a partition with few rows to send go out as one unit."""
from __future__ import annotations

import pytest

from shared.csvscan import CsvFormat
from shared.runs.model import Counts
from shared.runs.packing import ChunkPacker, Decided
from shared.segments import Chunk

ROWS = 100  # rows (and bytes, here) per chunk


def chunk(n: int, blob: str = "a.csv") -> Chunk:
    return Chunk("Seg", blob, "etag", n * ROWS, (n + 1) * ROWS, n * ROWS + 1, ROWS, ("Email",), CsvFormat())


def decided(n: int, sends: int, blob: str = "a.csv") -> Decided:
    c = chunk(n, blob)
    notes = {str(c.first_row + i): "unchanged" for i in range(ROWS - sends)}
    counted = None if sends else (Counts(rows=ROWS, unchanged=ROWS), [])
    return Decided(c, notes, sends, counted, upserts=sends, tagged=sends // 2)


def pack(packer: ChunkPacker, units: list[Decided]) -> list[Decided]:
    out = []
    for unit in units:
        out += packer.add(unit)
    return out + packer.finish()


def spans(units: list[Decided]) -> list[tuple[str, int, int, int, bool]]:
    return [(u.chunk.blob, u.chunk.first_row, u.chunk.row_count, u.sends, u.counted is not None) for u in units]


def test_adjacent_chunks_join_while_their_sends_fit_one_chunk():
    units = pack(ChunkPacker(max_sends=100), [decided(n, 10) for n in range(25)])

    assert spans(units) == [("a.csv", 1, 1000, 100, False), ("a.csv", 1001, 1000, 100, False),
                            ("a.csv", 2001, 500, 50, False)]
    first = units[0]
    assert (first.chunk.start, first.chunk.end) == (0, 1000)
    assert (first.upserts, first.tagged) == (100, 50)  # what the stagger paces the unit's message by
    assert len(first.notes) == 900 and first.notes["1"] == first.notes["990"] == "unchanged"


def test_full_chunks_stay_as_they_are():
    units = [decided(n, 100) for n in range(3)]

    assert pack(ChunkPacker(max_sends=100), units) == units


def test_chunks_without_sends_go_with_a_sending_group_between_its_chunks_and_are_counted_together_outside():
    units = pack(ChunkPacker(max_sends=100),
                 [decided(0, 0), decided(1, 5), decided(2, 0), decided(3, 5), decided(4, 0), decided(5, 0)])

    assert spans(units) == [("a.csv", 1, 100, 0, True), ("a.csv", 101, 300, 10, False),
                            ("a.csv", 401, 200, 0, True)]


def test_chunks_counted_together_sum_their_counts_and_keep_their_rejects_in_order():
    rejected = [decided(n, 0) for n in range(3)]
    rejected = [Decided(d.chunk, {}, 0, (Counts(rows=ROWS, rejected=1, unchanged=ROWS - 1), [f"reject {n}"]))
                for n, d in enumerate(rejected)]

    [unit] = pack(ChunkPacker(max_sends=100), rejected)

    assert (unit.chunk.start, unit.chunk.end, unit.chunk.first_row, unit.chunk.row_count) == (0, 300, 1, 300)
    assert unit.counted == (Counts(rows=300, rejected=3, unchanged=297), ["reject 0", "reject 1", "reject 2"])
    assert rejected[0].counted[0] == Counts(rows=ROWS, rejected=1, unchanged=ROWS - 1)  # not changed in place


def test_a_group_ends_at_its_partition_and_at_max_chunks():
    units = pack(ChunkPacker(max_sends=100, max_chunks=2),
                 [decided(0, 1), decided(1, 1), decided(2, 1), decided(3, 1, "b.csv")])

    assert spans(units) == [("a.csv", 1, 200, 2, False), ("a.csv", 201, 100, 1, False), ("b.csv", 301, 100, 1, False)]


def test_a_packer_needs_room_for_one_row():
    with pytest.raises(ValueError):
        ChunkPacker(max_sends=0)
