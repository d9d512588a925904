"""A chunk's verified outcomes as a compact blob, and the run-wide merge of them in key order.

A chunk worker records what it verified (`ContactChange`s) once its chunk is done; the finisher reads
every chunk's log and folds them into the next state. Each log is sorted by key on writing, so the
run's changes come out of `merge_changes` in key order with one log's worth of memory per chunk.

Stored with the state's framing (`codec`), header kind "changes", format version 1.
"""
from __future__ import annotations

import heapq
from array import array
from operator import itemgetter
from typing import Iterable, Iterator

from . import codec
from .errors import StateFormatError
from .update import ContactChange

KIND = "changes"
_SECTIONS = ("keys", "fingerprints", "tagged", "untagged", "flags", "emailLengths", "emails")
_WIDTHS = {"keys": 8, "fingerprints": 8, "tagged": 8, "untagged": 8, "flags": 1, "emailLengths": 2}
_TYPES = {8: "Q", 2: "H", 1: "B"}
_FORGET = 1


def encode_changes(changes: Iterable[ContactChange]) -> bytes:
    """One chunk's changes (any order) as bytes."""
    ordered = sorted(changes, key=itemgetter(0))
    columns = {name: array(_TYPES[width]) for name, width in _WIDTHS.items()}
    emails = []
    for change in ordered:
        email = change.email.encode()
        columns["keys"].append(change.key)
        columns["fingerprints"].append(change.fingerprint)
        columns["tagged"].append(change.tagged)
        columns["untagged"].append(change.untagged)
        columns["flags"].append(_FORGET if change.forget else 0)
        columns["emailLengths"].append(len(email))
        emails.append(email)
    sections = [
        codec.pack_section(name, codec.column_bytes(column), shuffle_width=_WIDTHS[name])
        for name, column in columns.items()
    ]
    sections.append(codec.pack_section("emails", b"".join(emails)))
    return b"".join(codec.frame({"kind": KIND, "count": len(ordered)}, sections))


def decode_changes(data: bytes | Iterable[bytes]) -> Iterator[ContactChange]:
    """The changes of one log, in ascending key order (decoded up front: a log is one chunk's worth)."""
    source = codec.ByteSource([data] if isinstance(data, (bytes, bytearray)) else data)
    _, header, sections = codec.read_header(source)
    count = header.get("count")
    if header.get("kind") != KIND or not isinstance(count, int) or count < 0:
        raise StateFormatError("not a change log, or no count", where="header")
    if tuple(s.name for s in sections) != _SECTIONS:
        raise StateFormatError(f"sections {[s.name for s in sections]}, expected {list(_SECTIONS)}",
                               where="header.sections")
    columns = {}
    for section in sections:
        where = f"section {section.name!r}"
        width = _WIDTHS.get(section.name)
        if width is not None and section.raw_size != count * width:
            raise StateFormatError(f"{section.raw_size} raw bytes for {count} changes", where=where)
        raw = codec.unpack_section(section, source.read(section.size, where))
        if width is None:
            columns[section.name] = bytes(raw)
        else:
            columns[section.name] = array(_TYPES[width])
            codec.fill_column(columns[section.name], raw)
    source.expect_end()
    lengths, emails = columns["emailLengths"], columns.pop("emails")
    if sum(lengths) != len(emails):
        raise StateFormatError("email lengths do not add up to the email column", where="section 'emailLengths'")
    return _changes(columns, emails)


def _changes(columns: dict, emails: bytes) -> Iterator[ContactChange]:
    # ASCII emails (nearly all): decode once and slice the text; byte offsets are character offsets.
    text = emails.decode() if emails.isascii() else None
    if text is not None:
        emails = b""  # keep one copy per log while the run's logs are merged
    new = tuple.__new__  # the NamedTuple without its Python-level __new__: this runs once a contact
    offset = 0
    previous = -1
    for key, fp, tagged, untagged, flags, length in zip(
            columns["keys"], columns["fingerprints"], columns["tagged"], columns["untagged"], columns["flags"],
            columns["emailLengths"]):
        if key < previous:
            raise StateFormatError("keys are not in ascending order", where="section 'keys'")
        previous = key
        end = offset + length
        email = text[offset:end] if text is not None else emails[offset:end].decode()
        yield new(ContactChange, (key, fp, tagged, untagged, email, flags == _FORGET))
        offset = end


def merge_changes(*logs: Iterable[ContactChange]) -> Iterator[ContactChange]:
    """Several sorted streams of changes as one, in ascending key order (for `next_state`)."""
    return heapq.merge(*logs, key=itemgetter(0))
