"""Incremental mirror sync: send only what changed, remove only the tags the export added."""
from __future__ import annotations

from .errors import ChangeError, StateConflictError, StateFormatError, SyncError, TooManyTagsError, UnknownVersionError
from .fingerprint import FINGERPRINT_SCHEME, NO_FINGERPRINT, fingerprint
from .state import MAX_TAGS, StateInfo, SyncState

__all__ = [
    "ChangeError",
    "FINGERPRINT_SCHEME",
    "MAX_TAGS",
    "NO_FINGERPRINT",
    "StateConflictError",
    "StateFormatError",
    "StateInfo",
    "SyncError",
    "SyncState",
    "TooManyTagsError",
    "UnknownVersionError",
    "fingerprint",
]
