"""The fingerprint of a contact as sent: 64 bits of BLAKE2b over the canonical ContactRequest body.

Canonical means compact JSON with sorted keys at every level, so the order in which a body's dict was
built does not matter, while list order (identifiers) and every value do. The body is the whole
ContactRequest as the app sends it, so a changed mapping (another column, a field added or dropped)
changes the fingerprints of the rows it affects and they are sent once more.

`FINGERPRINT_SCHEME` names this recipe. A state written under another scheme is not compared
fingerprint by fingerprint: every contact in it counts as changed (see `SyncState.classifier`).
"""
from __future__ import annotations

import hashlib

import orjson

FINGERPRINT_SCHEME = 1
NO_FINGERPRINT = 0  # never produced by `fingerprint`: "fields unknown", so never equal to a row's

_dumps, _SORTED = orjson.dumps, orjson.OPT_SORT_KEYS
_blake2b, _from_bytes = hashlib.blake2b, int.from_bytes


def fingerprint(body: dict) -> int:
    """64-bit fingerprint of a ContactRequest body (never 0)."""
    value = _from_bytes(_blake2b(_dumps(body, option=_SORTED), digest_size=8).digest(), "little")
    return value or 1
