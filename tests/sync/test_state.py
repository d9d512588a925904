"""The sync state's stored form: round trips, lookups, emails on demand, and clear errors on bad data."""
from __future__ import annotations

import struct
import zlib
from array import array

import pytest
from hypothesis import given, settings, strategies as st

from shared.mapping import email_key
from shared.sync import MAX_TAGS, StateFormatError, StateInfo, SyncState, TooManyTagsError, UnknownVersionError
from shared.sync import codec
from shared.sync.state import StateBuilder, mask_width

emails = st.builds(lambda local, domain: f"{local}@{domain}.com",
                   st.text("abcdefghijklmnopqrstuvwxyz0123456789._-ąžö", min_size=1, max_size=30),
                   st.sampled_from(["example", "contoso", "dömain"]))


def entries_of(state: SyncState) -> dict[str, tuple[int, int]]:
    return {email: (state.fingerprints[i], state.masks[i]) for i, email in enumerate(state.iter_emails())}


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(emails, st.tuples(st.integers(1, 2**64 - 1), st.integers(0, 2**10 - 1)), max_size=60),
       st.sampled_from([1, 10, 17, 64]))
def test_round_trip(entries, tag_count):
    tags = tuple(f"tag{i}" for i in range(tag_count))
    mask_limit = (1 << tag_count) - 1
    rows = [(email, fp, mask & mask_limit) for email, (fp, mask) in entries.items()]
    info = StateInfo(tags=tags, run_id="run-1", written_at="2026-01-02T03:04:05Z", last_full_at="2026-01-01T00:00:00Z")
    state = SyncState.from_entries(rows, info)
    data = state.to_bytes()
    for chunk_size in (len(data) or 1, 7):  # whole, and streamed in small chunks
        decoded = SyncState.read(data[i:i + chunk_size] for i in range(0, len(data), chunk_size))
        assert decoded.info == info
        assert entries_of(decoded) == {email: (fp, mask) for email, fp, mask in rows}
        assert list(decoded.keys) == sorted(email_key(e) for e in entries)
        assert decoded.masks.itemsize == mask_width(tag_count)
    assert SyncState.read_info([data[:codec.header_size(data)]]) == info


def test_lookup_and_emails_at_positions():
    state = SyncState.from_entries([(f"user{i}@example.com", i + 1, i % 2) for i in range(3000)], StateInfo(("T",)))
    for i in (0, 1, 1234, 2999):
        position = state.find(email_key(f"user{i}@example.com"))
        assert position >= 0 and state.fingerprints[position] == i + 1
    assert state.find(email_key("nobody@example.com")) == -1
    wanted = [5, 6, 700, 2999]
    by_position = list(state.iter_emails())
    assert list(state.emails_at(wanted)) == [by_position[p] for p in wanted]
    with pytest.raises(IndexError):
        list(state.emails_at([7, 3]))


def test_compact(tmp_path):
    state = SyncState.from_entries(
        [(f"first{i % 97}.last{i % 89}.{i}@shop{i % 13}.example.com", email_key(str(i)) or 1, i % 3)
         for i in range(20_000)], StateInfo(("A", "B")))
    assert len(state.to_bytes()) / len(state) < 40


def test_empty_state():
    state = SyncState.from_bytes(SyncState.empty().to_bytes())
    assert len(state) == 0 and state.tags == () and list(state.iter_emails()) == []
    assert state.find(12345) == -1


def test_too_many_tags():
    with pytest.raises(TooManyTagsError, match="at most 64 tags"):
        SyncState.empty(StateInfo(tuple(f"t{i}" for i in range(MAX_TAGS + 1))))


# --------------------------------------------------------------------------- bad data


@pytest.fixture(scope="module")
def stored() -> bytes:
    return SyncState.from_entries([(f"u{i}@example.com", i + 1, 1) for i in range(200)], StateInfo(("T",))).to_bytes()


def _header_end(data: bytes) -> int:
    return codec.header_size(data)


def test_not_a_state():
    with pytest.raises(StateFormatError, match="header: not a sync state"):
        SyncState.from_bytes(b"PK\x03\x04" + bytes(40))


def test_unknown_version(stored):
    newer = stored[:8] + struct.pack("<H", 2) + stored[10:]
    with pytest.raises(UnknownVersionError, match="version 2 is not supported") as caught:
        SyncState.from_bytes(newer)
    assert caught.value.version == 2 and isinstance(caught.value, StateFormatError)


@pytest.mark.parametrize("cut", [3, 20, -1, -500])
def test_truncated(stored, cut):
    with pytest.raises(StateFormatError, match="short|ends"):
        SyncState.from_bytes(stored[:cut])


def test_trailing_bytes(stored):
    with pytest.raises(StateFormatError, match="after the last section"):
        SyncState.from_bytes(stored + b"x")


def test_header_checksum(stored):
    damaged = bytearray(stored)
    damaged[20] ^= 0x01
    with pytest.raises(StateFormatError, match="header checksum"):
        SyncState.from_bytes(bytes(damaged))


@pytest.mark.parametrize("section", ["keys", "fingerprints", "masks", "emailLengths"])
def test_damaged_column_is_named(stored, section):
    _, _, sections = codec.read_header(codec.ByteSource([stored]))
    offset = _header_end(stored)
    for entry in sections:
        if entry.name == section:
            break
        offset += entry.size
    damaged = bytearray(stored)
    damaged[offset + entry.size // 2] ^= 0xFF
    with pytest.raises(StateFormatError, match=f"section '{section}'"):
        SyncState.from_bytes(bytes(damaged))


def test_damaged_emails_found_when_read(stored):
    damaged = bytearray(stored)
    damaged[-6] ^= 0xFF  # inside the email section's compressed stream (or its checksum)
    state = SyncState.from_bytes(bytes(damaged))  # the email column is only read when needed
    with pytest.raises(StateFormatError, match="section 'emails'"):
        reader = state.email_reader()
        reader.take(len(state))
        reader.check_complete()


def test_unsorted_keys_and_stray_mask_bits():
    def stored_with(keys, masks) -> bytes:
        builder = StateBuilder(StateInfo(("T",)))
        for key, mask in zip(keys, masks):
            builder.append(key, 1, mask, b"x@y.co")
        state = builder.finish()
        return state.to_bytes()

    good = stored_with([1, 2], [1, 1])
    assert len(SyncState.from_bytes(good)) == 2
    # A column rewritten out of order (same sizes and checksums recomputed) is still refused.
    state = SyncState.from_bytes(good)
    state.keys[0], state.keys[1] = state.keys[1], state.keys[0]
    with pytest.raises(StateFormatError, match="not strictly ascending"):
        SyncState.from_bytes(state.to_bytes())
    state = SyncState.from_bytes(good)
    state.masks[0] = 2
    with pytest.raises(StateFormatError, match="beyond the tag table"):
        SyncState.from_bytes(state.to_bytes())


def test_section_sizes_must_match_the_count(stored):
    state = SyncState.from_bytes(stored)
    state.fingerprints.append(9)
    with pytest.raises(StateFormatError, match="section 'fingerprints'"):
        SyncState.from_bytes(state.to_bytes())


def test_inflating_stops_at_the_declared_size():
    section, stored = codec.pack_section("emails", b"a" * 10_000)
    lying = codec.Section(section.name, section.codec, 1, section.size, 100, zlib.crc32(b"a" * 100))
    inflater = codec.Inflater(lying, [stored])
    with pytest.raises(StateFormatError, match="past the 100 raw bytes"):
        inflater.read(100)
        inflater.check_complete()


def test_columns_are_arrays():
    state = SyncState.from_entries([("a@b.co", 1, 0)])
    assert isinstance(state.keys, array) and state.keys.typecode == "Q"


def test_lookup_at_the_ends_of_the_key_space():
    builder = StateBuilder(StateInfo())
    keys = sorted({0, 1, 2**63, 2**64 - 2, 2**64 - 1} | {(i * 0x9E3779B97F4A7C15) % 2**64 for i in range(5000)})
    for key in keys:
        builder.append(key, 1, 0, b"x@y.co")
    state = builder.finish()
    assert state.index.shift < 64  # bucketed
    assert [state.find(k) for k in keys] == list(range(len(keys)))
    assert state.find(2) == -1 and state.find(2**64 - 3) == -1
