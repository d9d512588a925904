"""Row classes against the state, actions per mode, counts, and the mode a run goes in."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared.mapping import email_key
from shared.sync import (
    ACTIONS, CountField, RowClass, StateInfo, SyncAction, SyncMode, SyncState, classifier, count_for, fingerprint,
    membership_classifier, resolve_mode,
)

from .conftest import body, make_state


def classify(state: SyncState, tag: str | None, email: str, first_name: str) -> RowClass:
    return classifier(state, tag)(email_key(email), fingerprint(body(email, first_name)))


@pytest.mark.parametrize("email,first_name,tag,expected", [
    ("new@example.com", "Nia", "Vip", RowClass.NEW),
    ("a@example.com", "Anna", "Vip", RowClass.CHANGED),  # sent as Ann
    ("a@example.com", "Ann", "Vip", RowClass.UNCHANGED),
    ("a@example.com", "Ann", "News", RowClass.TAG_ONLY),  # fields the same, not tagged News yet
    ("c@example.com", "Cid", "News", RowClass.UNCHANGED),
    ("d@example.com", "Dee", "Vip", RowClass.TAG_ONLY),
    ("d@example.com", "Dee", "Renamed", RowClass.TAG_ONLY),  # a tag the state does not know
    ("d@example.com", "Dee", None, RowClass.UNCHANGED),  # an export that does not tag
    ("d@example.com", "Dora", None, RowClass.CHANGED),
])
def test_classes(vip_state, email, first_name, tag, expected):
    assert classify(vip_state, tag, email, first_name) is expected


def test_empty_state_makes_everything_new():
    assert classify(SyncState.empty(), "Vip", "a@example.com", "Ann") is RowClass.NEW


def test_another_fingerprint_scheme_makes_every_known_contact_changed():
    old = make_state({"a@example.com": ("Ann", {"Vip"})}, ("Vip",), fingerprint_scheme=0)
    assert classify(old, "Vip", "a@example.com", "Ann") is RowClass.CHANGED
    assert classify(old, "Vip", "n@example.com", "Ann") is RowClass.NEW


def test_membership_only_for_rows_an_earlier_segment_delivers(vip_state):
    news = membership_classifier(vip_state, "News")
    assert news(email_key("c@example.com")) is RowClass.UNCHANGED
    assert news(email_key("a@example.com")) is RowClass.TAG_ONLY
    assert news(email_key("new@example.com")) is RowClass.TAG_ONLY


def test_actions_and_counts_per_mode():
    assert ACTIONS[SyncMode.INCREMENTAL] == {RowClass.NEW: SyncAction.UPSERT, RowClass.CHANGED: SyncAction.UPSERT,
                                             RowClass.TAG_ONLY: SyncAction.TAG, RowClass.UNCHANGED: SyncAction.SKIP}
    assert ACTIONS[SyncMode.PREVIEW] == ACTIONS[SyncMode.INCREMENTAL] and not SyncMode.PREVIEW.writes
    assert set(ACTIONS[SyncMode.FULL].values()) == {SyncAction.UPSERT}
    incremental = {c: count_for(SyncMode.INCREMENTAL, c) for c in RowClass}
    assert incremental == {RowClass.NEW: CountField.ADDED, RowClass.CHANGED: CountField.UPDATED,
                           RowClass.TAG_ONLY: CountField.UPDATED, RowClass.UNCHANGED: CountField.UNCHANGED}
    assert count_for(SyncMode.FULL, RowClass.UNCHANGED) is CountField.UPDATED
    assert count_for(SyncMode.FULL, RowClass.NEW) is CountField.ADDED


NOW = datetime(2026, 3, 20, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("requested,trigger,last_full,days,expected", [
    (SyncMode.PREVIEW, "schedule", "", 7, SyncMode.PREVIEW),  # an explicit mode wins
    (SyncMode.INCREMENTAL, "schedule", "", 7, SyncMode.INCREMENTAL),
    (None, "schedule", "2026-03-13T02:00:01Z", 7, SyncMode.INCREMENTAL),  # a second short of 7 days
    (None, "schedule", "2026-03-13T02:00:00Z", 7, SyncMode.FULL),  # 7 days ago
    (None, "schedule", "", 7, SyncMode.FULL),  # never had a full run
    (None, "schedule", "2026-01-01T00:00:00Z", 0, SyncMode.INCREMENTAL),  # 0: never forced
    (None, "upload", "2026-01-01T00:00:00Z", 7, SyncMode.INCREMENTAL),
    (None, "manual", "2026-01-01T00:00:00Z", 7, SyncMode.INCREMENTAL),
])
def test_resolve_mode(requested, trigger, last_full, days, expected):
    state = SyncState.empty(StateInfo(last_full_at=last_full))
    assert resolve_mode(requested, trigger, state, NOW, days) is expected


def test_first_run_and_old_fingerprints_count_as_full():
    assert resolve_mode(None, "upload", None, NOW) is SyncMode.FULL
    assert resolve_mode(None, "upload", SyncState.empty(StateInfo(fingerprint_scheme=0)), NOW) is SyncMode.FULL
