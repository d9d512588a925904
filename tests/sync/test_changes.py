"""Chunk change logs: a compact round trip, and the run-wide merge in key order."""
from __future__ import annotations

import pytest

from shared.mapping import email_key
from shared.sync import ContactChange, StateFormatError, SyncState, decode_changes, encode_changes, merge_changes


def change(address: str, **fields) -> ContactChange:
    return ContactChange(email_key(address), **fields)


def test_round_trip_sorted_by_key():
    changes = [change("a@x.com", fingerprint=9, tagged=1, email="a@x.com"), change("b@x.com", untagged=2),
               change("ä@x.com", forget=True), change("c@x.com", fingerprint=2**64 - 1, tagged=2**63, email="c@x.com")]
    decoded = list(decode_changes(encode_changes(changes)))
    assert decoded == sorted(changes, key=lambda c: c.key)


def test_merge_of_logs_is_in_key_order():
    logs = [encode_changes([change(f"u{i}@x.com", tagged=1) for i in range(start, 300, 3)]) for start in range(3)]
    merged = list(merge_changes(*(decode_changes(log) for log in logs)))
    assert [c.key for c in merged] == sorted(email_key(f"u{i}@x.com") for i in range(300))


def test_compact():
    changes = [change(f"first.last.{i}@example.com", fingerprint=email_key(str(i)), tagged=1,
                      email=f"first.last.{i}@example.com") for i in range(1000)]
    assert len(encode_changes(changes)) < 1000 * 30


def test_bad_logs():
    with pytest.raises(StateFormatError, match="not a change log"):
        list(decode_changes(SyncState.empty().to_bytes()))
    with pytest.raises(StateFormatError, match="not a sync state"):
        SyncState.from_bytes(encode_changes([]))
    data = bytearray(encode_changes([change("a@x.com", tagged=1)]))
    data[-3] ^= 0xFF
    with pytest.raises(StateFormatError, match="section 'emails'"):
        list(decode_changes(bytes(data)))
