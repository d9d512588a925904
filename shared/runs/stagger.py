"""When each chunk of an opened wave becomes visible in the queue (pure).

A chunk whose batches are not settled yet ends and comes back through the queue (`Waiting`), and the
queue hands out messages in the order they become visible. Were every chunk of a wave visible at
once, a chunk back from waiting would queue behind all of them: the chunks' finishing work (settle,
result, count) would wait for the last upsert of the run and pile up at its end, 50 s of a
200,000-profile run. So a wave's chunks become visible at the pace the connection's budget lets their
requests through, a little ahead of it (`HEAD_SHARE` of a window), and a chunk back from waiting
finds only that little ahead of it.

The pace is the slower of the upserts' (general budget) and, for an export that tags, the tag
calls'. The tag calls' head is half a window: a chunk tags only once its batches have settled,
seconds after its upserts, and a quarter of a window left the tag calls short of chunks early in a
run (53 calls in the first 20 s, where the budget allows 76; 60 with half a window). Chunks queued
by plan parts count as ahead of the rest of their wave (`ahead`). A chunk that is late (the budget
is shared, Omnisend answered 429) only finds more chunks visible ahead of it: no worse than all at
once.
"""
from __future__ import annotations

import math
from typing import Sequence

from ..omnisend import MAX_BATCH_ITEMS, MAX_TAG_EMAILS
from ..ratelimit import Budget
from .model import PlannedChunk

HEAD_SHARE = {"general": 0.1, "tags": 0.5}  # of a window's requests, visible at once ahead of the pace
MAX_STAGGER_SECONDS = 6 * 3600  # a wave paced longer than this shows the rest at once (runs end sooner)


def visible_after(chunks: Sequence[PlannedChunk], budgets: dict[str, Budget], tagging: bool,
                  ahead: tuple[int, int] = (0, 0)) -> list[float]:
    """Seconds after the wave opens at which each of `chunks` (in order) should become visible, when
    chunks of the wave that send `ahead` (upserts, tag calls) come before them."""
    kinds = ("general", "tags") if tagging else ("general",)
    spent = {"general": ahead[0], "tags": ahead[1]}
    delays = []
    for planned in chunks:
        delay = 0.0
        for kind in kinds:
            budget = budgets[kind]
            interval = budget.interval_ms / 1000  # seconds between grants at the budget's steady pace
            head = max(1, int(budget.grants_per_span * HEAD_SHARE[kind]))
            delay = max(delay, (spent[kind] - head) * interval)
        delays.append(min(MAX_STAGGER_SECONDS, max(0.0, delay)))
        upserts, tags = _requests(planned, tagging)
        spent["general"] += upserts
        spent["tags"] += tags
    return delays


def requests_of(chunks: Sequence[PlannedChunk], tagging: bool) -> tuple[int, int]:
    """(upserts, tag calls) that `chunks` send, as the stagger counts them."""
    counted = [_requests(planned, tagging) for planned in chunks]
    return sum(u for u, _ in counted), sum(t for _, t in counted)


def _requests(planned: PlannedChunk, tagging: bool) -> tuple[int, int]:
    rows = planned.chunk.row_count  # a plan of before sends were kept: at most every row
    upserts, tagged = (rows, rows) if planned.sends is None else (planned.sends.upserts, planned.sends.tagged)
    return math.ceil(upserts / MAX_BATCH_ITEMS), math.ceil(tagged / MAX_TAG_EMAILS) if tagging else 0
