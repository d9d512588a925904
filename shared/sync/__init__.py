"""Incremental mirror sync: send only what changed, remove only the tags the export added.

Per export, a `SyncState` records every contact the export delivered: its email key and email, the
fingerprint of the ContactRequest body last verified as sent, and a bit per segment tag the export
verifiably added. It lives in the state container (`SyncStateStore`, `sync/<exportId>/state.bin`),
compact (sorted fixed-width columns, zlib; about 20-30 bytes a contact) and read in bounded memory.
Everything here but `store` is pure: decisions on values, no storage, no Omnisend.

How a run is meant to call it:

Planner (once per run)
    stored = SyncStateStore(state_container).load(export_id)     # None before the first run
    prior = stored.state if stored else SyncState.empty()
    mode = resolve_mode(requested_mode, trigger, stored and stored.state, now, export.full_resync_days)
    run_tags = run_tag_table(prior.tags, export_tags)           # keep in the run document
    per segment:  classify = classifier(prior, tag)               # tag None when the export does not tag
                  earlier = membership_classifier(prior, tag)     # rows an earlier segment delivers
    per valid row: row_class = classify(email_key(email), fingerprint(contact))
                   action = ACTIONS[mode][row_class]              # UPSERT, TAG or SKIP
    SKIP rows cost no request (count `unchanged`); a chunk without UPSERT or TAG rows is not enqueued.
    In `preview` mode feed `PreviewCollector.add(row_class, ...)` instead and enqueue nothing.
    The members of each segment (email keys of its valid rows) are kept as today for the finisher.

Worker (per chunk)
    Upserts the UPSERT rows and tags UPSERT and TAG rows as today, then records what it verified as
    `ContactChange`s (bits in `run_tags`): an item verified sent -> (key, fingerprint, email=...),
    plus `tagged=bit` once its tag call is verified; a TAG row verified -> (key, tagged=bit).
    Rejected, failed and unreached rows get no change. `encode_changes(changes)` is written beside
    the chunk's result (before it, like the rejects).

Finisher (once every chunk is counted, also for cancelled and failed runs, without removals then)
    plan = plan_removals(prior, segment_tags, members, max_removal_percent=...)
    for removal in plan.to_apply: DELETE /contacts/tags for plan.emails(prior, removal), 250 a call;
        each verified call -> ContactChange(key, untagged=bit in run_tags) for its contacts
    plan.held -> the run ends partiallySucceeded, removalsHeld, plan.held_reason; keep
        plan.keys(prior, removal) for POST /runs/{id}/approve-removals (untag those still carrying it)
    plan.departed -> ContactChange(key, forget=True)
    nxt = next_state(prior, run_tags, merge_changes(*chunk_logs, removal_changes, forget_changes),
                     run_id=..., written_at=now, full_at=now if the run was full and ended else "")
    SyncStateStore.save(export_id, nxt, etag=stored.etag or None): one atomic conditional write. A
    StateConflictError whose current `load_info(...).run_id` is this run means it was saved already.
"""
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
from .store import StoredState, SyncStateStore
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
    "StoredState",
    "SyncAction",
    "SyncError",
    "SyncMode",
    "SyncState",
    "SyncStateStore",
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
