"""Incremental mirror sync: send only what changed, remove only the tags the export added."""
from __future__ import annotations

from .changes import decode_changes, encode_changes, merge_changes
from .diff import (
    ACTIONS,
    CountField,
    RowClass,
    SyncAction,
    SyncMode,
    action_for,
    classifier,
    count_for,
    membership_classifier,
    resolve_mode,
)
from .errors import ChangeError, StateConflictError, StateFormatError, SyncError, TooManyTagsError, UnknownVersionError
from .fingerprint import FINGERPRINT_SCHEME, NO_FINGERPRINT, fingerprint
from .preview import PreviewCollector, PreviewReport, RowSample
from .removals import (
    DEFAULT_MAX_REMOVAL_PERCENT,
    RemovalDecision,
    RemovalPlan,
    RemovalReason,
    TagRemoval,
    plan_removals,
)
from .state import MAX_TAGS, StateInfo, SyncState
from .update import ContactChange, next_state, run_tag_table, tag_bits

__all__ = [
    "ACTIONS",
    "ChangeError",
    "ContactChange",
    "CountField",
    "DEFAULT_MAX_REMOVAL_PERCENT",
    "FINGERPRINT_SCHEME",
    "MAX_TAGS",
    "NO_FINGERPRINT",
    "PreviewCollector",
    "PreviewReport",
    "RemovalDecision",
    "RemovalPlan",
    "RemovalReason",
    "RowClass",
    "RowSample",
    "StateConflictError",
    "StateFormatError",
    "StateInfo",
    "SyncAction",
    "SyncError",
    "SyncMode",
    "SyncState",
    "TagRemoval",
    "TooManyTagsError",
    "UnknownVersionError",
    "action_for",
    "classifier",
    "count_for",
    "decode_changes",
    "encode_changes",
    "fingerprint",
    "membership_classifier",
    "merge_changes",
    "next_state",
    "plan_removals",
    "resolve_mode",
    "run_tag_table",
    "tag_bits",
]
