"""Fixtures of the sync tests: small states built from (email, fields, tags) entries."""
from __future__ import annotations

import pytest

from shared.mapping import contact_request
from shared.sync import StateInfo, SyncState, fingerprint


def body(email: str, first_name: str = "Jane", **fields) -> dict:
    """The ContactRequest body the app would send for this email and fields."""
    return contact_request(email, firstName=first_name, **fields)


def make_state(entries: dict[str, tuple[str, set[str]]], tags: tuple[str, ...], **info) -> SyncState:
    """entries: email -> (first name sent, tags the export set)."""
    rows = []
    for email, (first_name, carried) in entries.items():
        mask = sum(1 << tags.index(tag) for tag in carried)
        rows.append((email, fingerprint(body(email, first_name)), mask))
    return SyncState.from_entries(rows, StateInfo(tags=tags, **info))


@pytest.fixture()
def vip_state() -> SyncState:
    """Four contacts: three tagged Vip by the export, one (c@) tagged Vip and News, one (d@) untagged."""
    return make_state({
        "a@example.com": ("Ann", {"Vip"}),
        "b@example.com": ("Ben", {"Vip"}),
        "c@example.com": ("Cid", {"Vip", "News"}),
        "d@example.com": ("Dee", set()),
    }, ("Vip", "News"))
