"""When the chunks of an opened wave become visible: at the pace of the connection's budget (pure)."""
from __future__ import annotations

import math

import pytest

from shared.csvscan import CsvFormat
from shared.ratelimit import PACE_SPARE_SECONDS, Budget
from shared.runs.model import PlannedChunk, Sends
from shared.runs.stagger import HEAD_SHARE, MAX_STAGGER_SECONDS, requests_of, visible_after
from shared.segments import Chunk

OMNISEND = {"general": Budget(400), "tags": Budget(60)}


def planned(seq: int, upserts: int | None = 1000, rows: int = 1000, tagged: int | None = None) -> PlannedChunk:
    chunk = Chunk("Seg", "a.csv", "etag", seq * rows, (seq + 1) * rows, seq * rows + 1, rows, ("Email",), CsvFormat())
    sends = None if upserts is None else Sends(upserts, upserts if tagged is None else tagged)
    return PlannedChunk(seq, 0, chunk, False, sends=sends)


def steady_interval(budget: Budget) -> float:
    """Seconds between two grants of the budget's steady pace."""
    return (budget.window_seconds + budget.margin_seconds + PACE_SPARE_SECONDS) / budget.grants_per_span


def test_a_waves_chunks_become_visible_at_the_upserts_pace_after_a_head():
    delays = visible_after([planned(i) for i in range(200)], OMNISEND, tagging=False)

    head = int(399 * HEAD_SHARE["general"])  # 39 requests: the first 4 chunks (10 upserts each) at once
    assert delays[:4] == [0.0] * 4
    for i, delay in enumerate(delays):
        assert delay == pytest.approx(max(0.0, (10 * i - head) * steady_interval(OMNISEND["general"])))
    # The last chunk shows about when the budget lets its upserts through: 1,990 upserts at 392 a minute.
    assert delays[-1] == pytest.approx(1951 * 61.0 / 399)
    assert delays == sorted(delays)


def test_a_chunk_costs_the_requests_of_what_it_sends_not_its_rows():
    sparse = visible_after([planned(i, upserts=5) for i in range(100)], OMNISEND, tagging=False)
    assert sparse[-1] == pytest.approx((99 - 39) * steady_interval(OMNISEND["general"]))  # one upsert each

    unknown = visible_after([planned(i, upserts=None, rows=500) for i in range(20)], OMNISEND, tagging=False)
    assert unknown[-1] == pytest.approx((19 * 5 - 39) * steady_interval(OMNISEND["general"]))  # a plan of before

    # Rows whose fields changed but that carry their tag already (a changed mapping) cost no tag call:
    changed = visible_after([planned(i, tagged=0) for i in range(50)], OMNISEND, tagging=True)
    assert changed == visible_after([planned(i) for i in range(50)], OMNISEND, tagging=False)
    # and rows that only get a tag cost no upsert: their chunks go at the tag calls' pace alone.
    tag_only = visible_after([planned(i, upserts=0, tagged=1000) for i in range(50)], OMNISEND, tagging=True)
    assert tag_only == pytest.approx([tag_paced(4 * i) for i in range(50)])


def tag_paced(calls_before: int) -> float:
    """When a chunk with `calls_before` tag calls ahead of it shows at the tag calls' pace."""
    head = int(59 * HEAD_SHARE["tags"])  # 29 tag calls: 7 chunks of 4 calls (250 emails each)
    return max(0.0, (calls_before - head) * steady_interval(OMNISEND["tags"]))


def test_an_export_that_tags_goes_at_the_slower_pace_of_its_tag_calls():
    delays = visible_after([planned(i) for i in range(50)], OMNISEND, tagging=True)
    untagged = visible_after([planned(i) for i in range(50)], OMNISEND, tagging=False)

    # Each chunk waits for the slower of the two: the upserts' while the tags' head lasts, then the tags'.
    assert delays == pytest.approx([max(tag_paced(4 * i), upserts) for i, upserts in enumerate(untagged)])
    assert delays[10:] == pytest.approx([tag_paced(4 * i) for i in range(10, 50)])
    assert delays[-1] > 2 * untagged[-1]


def test_the_pace_follows_the_budgets_window_and_small_budgets_keep_a_head_of_one():
    compressed = {"general": Budget(400, window_seconds=15), "tags": Budget(60, window_seconds=15)}
    delays = visible_after([planned(i) for i in range(10)], compressed, tagging=False)
    assert delays[-1] == pytest.approx((90 - 39) * 16.0 / 399)

    tiny = {"general": Budget(3), "tags": Budget(1)}
    delays = visible_after([planned(i, upserts=100) for i in range(4)], tiny, tagging=False)
    assert delays == pytest.approx([0.0, 0.0, 61.0 / 2, 2 * 61.0 / 2])  # a head of 1, 2 grants a span


def test_a_long_wave_shows_its_rest_at_the_cap():
    slow = {"general": Budget(1), "tags": Budget(1)}
    delays = visible_after([planned(i) for i in range(100)], slow, tagging=False)
    assert max(delays) == MAX_STAGGER_SECONDS
    assert math.isclose(delays[1], 9 * 61.0)


def test_chunks_queued_after_others_of_their_wave_show_when_they_would_have_shown_with_them():
    """Plan parts queue a wave's first chunks while the rest is planned: the rest keeps their pace."""
    chunks = [planned(i, upserts=400 + 100 * (i % 5)) for i in range(30)]
    whole = visible_after(chunks, OMNISEND, tagging=True)
    assert requests_of(chunks[:12], tagging=True) == (69, 32)  # 100 contacts an upsert, 250 a tag call
    later = visible_after(chunks[12:], OMNISEND, tagging=True, ahead=requests_of(chunks[:12], tagging=True))
    assert later == pytest.approx(whole[12:]) and later[0] > 0
