"""Contacts that left a segment lose its tag.

Membership is the segment as read by this run (every valid email of it, sent or not), so a row that
failed to send never costs its contact the tag. A segment with no valid email removes no tag: an
empty input is far likelier a broken export or mapping than an empty segment. Contacts stay in
Omnisend (there is no delete): the run counts how many were untagged.
"""
from __future__ import annotations

import logging
from array import array

from .. import mapping
from ..omnisend import MAX_TAG_EMAILS, AuthenticationError, PermissionDeniedError, RateLimitedError
from ..settings import Settings
from . import clients, finisher, outbox, paths
from .errors import Deferred, RunFailure
from .messages import UntagMessage, may_defer
from .store import Claim, RunStore

log = logging.getLogger(__name__)


def leavers(contacts, members: set[int]) -> list[str]:
    """Emails of tagged contacts that are not members (pure)."""
    return [c["email"] for c in contacts if c.get("email") and mapping.email_key(c["email"]) not in members]


def untag_leavers(settings: Settings, store: RunStore, message: UntagMessage, me: str) -> None:
    run = store.get_run(message.run_id)
    wave = message.wave
    if run.terminal or wave not in (run.untag_pending or []):
        return
    claim = Claim(store, run.run_id, message.step, message.owner or me)
    claim.acquire()
    segment = run.segment_names[wave]
    found = store.read(paths.members(run.run_id, run.plan_token, wave))
    if found is None:
        raise LookupError(f"run {run.run_id}: the members of segment {segment!r} are missing")
    members = array("Q")
    members.frombytes(found.data)
    removed = 0
    if members:
        client = clients.client_for(settings, clients.connection_of(settings, run))
        member_keys = set(members)
        try:
            gone = leavers(client.iter_contacts(tag=segment), member_keys)
            for start in range(0, len(gone), MAX_TAG_EMAILS):
                if store.get_run(run.run_id).terminal:
                    return
                claim.keep_alive()
                client.remove_tags(gone[start:start + MAX_TAG_EMAILS], [segment])
            removed = len(gone)
        except (AuthenticationError, PermissionDeniedError) as exc:
            raise RunFailure(f"Omnisend refused the connection's API key during the run: {exc}") from exc
        except RateLimitedError as exc:
            if may_defer(message, exc.retry_after):
                raise Deferred(exc.retry_after, f"Omnisend rate limit: {exc}", rate_limited=True) from exc
            record(store, run.run_id, wave, 0, f"removing the tag from leavers gave up waiting: {exc}", me)
            return
        log.info("run %s: %d contacts left segment %s and lost its tag", run.run_id, removed, segment)
    record(store, run.run_id, wave, removed, None, me)


def record(store: RunStore, run_id: str, wave: int, untagged: int, error: str | None, me: str) -> None:
    outbox.settle(store, run_id, lambda run: finisher.untag_done(run, wave, untagged, error), me)
