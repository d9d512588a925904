"""Per-row decisions while planning: what a valid row is against the state, and what a run does with it.

    classify = classifier(state, tag)          # once per segment
    row_class = classify(email_key, fingerprint)  # per row: one bucket bisect, two column reads
    action = ACTIONS[mode][row_class]          # upsert (fields, then tag), tag only, or nothing

`new`: the export never delivered this email. `changed`: the body as sent differs from the last one
verified. `tagOnly`: same body, but the export has not (verifiably) tagged it with this segment's tag.
`unchanged`: nothing to do. Modes: `incremental` sends new and changed rows and tags tag-only ones;
`full` upserts and tags every valid row; `preview` decides as `incremental` but writes nothing.
"""
from __future__ import annotations

from bisect import bisect_left
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Callable

from .fingerprint import FINGERPRINT_SCHEME
from .state import SyncState


class RowClass(str, Enum):
    NEW = "new"
    CHANGED = "changed"
    TAG_ONLY = "tagOnly"
    UNCHANGED = "unchanged"


class SyncMode(str, Enum):
    INCREMENTAL = "incremental"
    FULL = "full"
    PREVIEW = "preview"

    @property
    def writes(self) -> bool:
        """Whether a run in this mode writes to Omnisend and to the state."""
        return self is not SyncMode.PREVIEW


class SyncAction(str, Enum):
    UPSERT = "upsert"  # send the contact's fields, then (when the export tags) its segment tag
    TAG = "tag"  # only the segment tag
    SKIP = "skip"  # no request at all


class CountField(str, Enum):
    """The run count a row adds to once it is verified sent (`sent = added + updated`)."""

    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


_INCREMENTAL_ACTIONS = {RowClass.NEW: SyncAction.UPSERT, RowClass.CHANGED: SyncAction.UPSERT,
                        RowClass.TAG_ONLY: SyncAction.TAG, RowClass.UNCHANGED: SyncAction.SKIP}
ACTIONS: dict[SyncMode, dict[RowClass, SyncAction]] = {
    SyncMode.INCREMENTAL: _INCREMENTAL_ACTIONS,
    SyncMode.PREVIEW: _INCREMENTAL_ACTIONS,
    SyncMode.FULL: dict.fromkeys(RowClass, SyncAction.UPSERT),
}
_ACTION_COUNTS = {SyncAction.SKIP: CountField.UNCHANGED}


def action_for(mode: SyncMode, row_class: RowClass) -> SyncAction:
    return ACTIONS[mode][row_class]


def count_for(mode: SyncMode, row_class: RowClass) -> CountField:
    """`new` rows are added; every other row that is written is updated; rows not written are unchanged."""
    if row_class is RowClass.NEW:
        return CountField.ADDED
    return _ACTION_COUNTS.get(ACTIONS[mode][row_class], CountField.UPDATED)


def classifier(state: SyncState, tag: str | None) -> Callable[[int, int], RowClass]:
    """classify(email_key, fingerprint) for the rows of one segment whose tag is `tag` (None: the
    export does not tag). A state written under another fingerprint scheme makes every known contact
    `changed`."""
    keys, fingerprints, masks = state.keys, state.fingerprints, state.masks
    index = state.index
    starts, shift = index.starts, index.shift
    bit = state.tag_bit(tag)
    tagging = tag is not None
    new, changed, tag_only, unchanged = RowClass.NEW, RowClass.CHANGED, RowClass.TAG_ONLY, RowClass.UNCHANGED

    if state.info.fingerprint_scheme != FINGERPRINT_SCHEME:
        def classify_all_changed(key: int, fingerprint: int) -> RowClass:
            return changed if state.find(key) >= 0 else new

        return classify_all_changed

    def classify(key: int, fingerprint: int) -> RowClass:
        bucket = key >> shift
        hi = starts[bucket + 1]
        i = bisect_left(keys, key, starts[bucket], hi)
        if i == hi or keys[i] != key:
            return new
        if fingerprints[i] != fingerprint:
            return changed
        if tagging and not masks[i] & bit:
            return tag_only
        return unchanged

    return classify


def membership_classifier(state: SyncState, tag: str) -> Callable[[int], RowClass]:
    """classify(email_key) for a row whose contact an earlier segment of the same run already delivers:
    only its membership of `tag` matters (`tagOnly` or `unchanged`)."""
    bit = state.tag_bit(tag)
    masks, find = state.masks, state.index.find
    tag_only, unchanged = RowClass.TAG_ONLY, RowClass.UNCHANGED

    def classify(key: int) -> RowClass:
        i = find(key)
        return unchanged if i >= 0 and masks[i] & bit else tag_only

    return classify


def resolve_mode(requested: SyncMode | None, trigger: str, state: SyncState | None, now: datetime,
                 full_resync_days: int | None = 7) -> SyncMode:
    """The mode a run goes in. An explicit request wins. A scheduled run without one is incremental,
    unless the export has had no full run within `full_resync_days` (None or 0: never forced), or the
    state is missing or was fingerprinted another way (every row is sent anyway: the run counts as full).
    Upload-triggered runs stay incremental."""
    if requested is not None:
        return requested
    if state is None or state.info.fingerprint_scheme != FINGERPRINT_SCHEME:
        return SyncMode.FULL
    if trigger != "schedule" or not full_resync_days:
        return SyncMode.INCREMENTAL
    last_full = parse_time(state.info.last_full_at)
    if last_full is None or now - last_full >= timedelta(days=full_resync_days):
        return SyncMode.FULL
    return SyncMode.INCREMENTAL


def parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
