"""Delivering one chunk's contacts to Omnisend: batches, verified outcomes, segment tags.

A contact counts as sent only when its batch finished without an error for it. Progress is kept in a
`ChunkProgress` that the session persists after every step, so a redelivered or deferred chunk resumes
where it stopped instead of spending the rate budget again.

A chunk never sleeps on Omnisend: once its batches are created it asks its connection's batch board
(`Outcomes`, board.py) for their outcomes, and while some are unknown it ends with `Waiting`; its
message comes back later and resumes from its progress.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from ..omnisend import (
    MAX_BATCH_ITEMS,
    MAX_TAG_EMAILS,
    Batch,
    OmnisendClient,
    OmnisendError,
    RateLimitedError,
    TransientError,
)
from .board import GONE
from .errors import Deferred, Waiting

log = logging.getLogger(__name__)

STOPPED_BATCH_RETRIES = 2


@dataclass
class BatchState:
    emails: list[str]
    batch_id: str | None = None
    attempt: int = 0
    sent: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # email -> Omnisend's message
    failed: dict[str, str] = field(default_factory=dict)
    verified: bool = False


@dataclass
class ChunkProgress:
    """Everything a chunk has done so far in Omnisend; JSON-serialisable through to_dict/from_dict."""

    batches: list[BatchState] = field(default_factory=list)
    tag_calls_done: list[int] = field(default_factory=list)
    tag_failed: dict[str, str] = field(default_factory=dict)
    rate_limited: int = 0  # deferrals for an Omnisend 429 or a spent budget
    waiting_since: float | None = None  # when the chunk first waited for its batches (epoch seconds)

    def to_dict(self) -> dict:
        return {
            "batches": [vars(b) for b in self.batches],
            "tagCallsDone": self.tag_calls_done,
            "tagFailed": self.tag_failed,
            "rateLimited": self.rate_limited,
            "waitingSince": self.waiting_since,
        }

    @property
    def waiting_on(self) -> list[str] | None:
        """The batches the chunk waits for, when waiting is all it can do (all created, some unverified)."""
        open_ = [b for b in self.batches if not b.verified]
        if not open_ or any(b.batch_id is None for b in open_):
            return None
        return [b.batch_id for b in open_]

    @classmethod
    def from_dict(cls, data: dict) -> "ChunkProgress":
        return cls(
            batches=[BatchState(**b) for b in data.get("batches", [])],
            tag_calls_done=list(data.get("tagCallsDone", [])),
            tag_failed=dict(data.get("tagFailed", {})),
            rate_limited=int(data.get("rateLimited", 0)),
            waiting_since=data.get("waitingSince"),
        )


class Session(Protocol):
    """Where a delivery keeps its progress, and whom it asks whether to go on."""

    def save(self, progress: ChunkProgress) -> None:
        """Persist `progress`; raises ClaimLost when another delivery took the chunk over."""

    def check(self) -> None:
        """Asked before every write to Omnisend: raises Stopped once the run has ended."""


class Outcomes(Protocol):
    """Where a chunk learns how its batches ended: its connection's batch board (board.BatchBoard)."""

    def creating(self, batches: int, tag_calls: int = 0) -> None:
        """Said before the chunk creates `batches` batches, after which it makes `tag_calls` tag calls."""

    def tagged(self) -> None:
        """Said once the chunk made its tag calls."""

    def interrupted(self) -> None:
        """Said when the chunk stops creating batches before it is done (it is deferred)."""

    def outcomes(self, batch_ids: list[str]) -> tuple[dict[str, Batch], float]:
        """The finished or stopped batches among `batch_ids`, and seconds to wait for the others."""


@dataclass(frozen=True)
class DeliveryOutcome:
    sent: frozenset[str]
    rejected: dict[str, str]
    failed: dict[str, str]


@dataclass
class ChunkDelivery:
    """Sends `contacts` (email -> ContactRequest body) and tags each sent email with its tags."""

    client: OmnisendClient
    contacts: dict[str, dict]
    tags_by_email: dict[str, tuple[str, ...]]
    # Emails upserted by an earlier segment of the run: they only get this segment's tag.
    tag_only: frozenset[str]
    progress: ChunkProgress
    session: Session
    board: Outcomes
    clock: Callable[[], float] = time.time

    def run(self) -> DeliveryOutcome:
        if not self.progress.batches:
            emails = list(self.contacts)
            self.progress.batches = [
                BatchState(emails[i : i + MAX_BATCH_ITEMS]) for i in range(0, len(emails), MAX_BATCH_ITEMS)
            ]
            self.save()
        try:
            while not all(b.verified for b in self.progress.batches):
                self._create_missing_batches()
                self._verify_finished_batches()
            outcome = self._outcome()
            self._tag(outcome.sent)
        except RateLimitedError as exc:
            self.progress.rate_limited += 1
            self.save()
            raise Deferred(exc.retry_after, f"Omnisend rate limit: {exc}", rate_limited=True) from exc
        return self._outcome()

    def give_up(self, reason: str) -> DeliveryOutcome:
        """The outcome when the chunk may wait no longer: whatever is not done fails with `reason`."""
        outcome = self._outcome()
        tagged = self._tagged()
        failed = dict(outcome.failed)
        for email in (*self.contacts, *self.tag_only):
            if email not in outcome.rejected and email not in failed and (
                    email not in outcome.sent or email not in tagged):
                failed[email] = reason
        return DeliveryOutcome(frozenset(outcome.sent - failed.keys()), outcome.rejected, failed)

    def save(self) -> None:
        self.session.save(self.progress)

    def _create_missing_batches(self) -> None:
        missing = [b for b in self.progress.batches if b.batch_id is None and not b.verified]
        if not missing:
            return
        owed = len(self._tag_calls((*self.contacts, *self.tag_only))) - len(self.progress.tag_calls_done)
        self.board.creating(len(missing), max(0, owed))
        try:
            for batch in missing:
                self.session.check()
                items = [self.contacts[email] for email in batch.emails]
                batch.batch_id = self.client.create_contact_batch(items)
                self.save()
        except RateLimitedError:
            self.board.interrupted()
            raise

    def _verify_finished_batches(self) -> None:
        """Settle the batches whose outcome the board knows; end with Waiting while others are unknown."""
        pending = {b.batch_id: b for b in self.progress.batches if b.batch_id and not b.verified}
        found, delay = self.board.outcomes(list(pending))
        for batch_id, status in found.items():
            self._settle(pending.pop(batch_id), status)
        if found:
            self.save()  # once for all the batches settled (a crash before it settles them again)
        if any(b.batch_id is None and not b.verified for b in self.progress.batches):
            return  # a stopped batch is to be resent first
        if pending:
            if self.progress.waiting_since is None:
                self.progress.waiting_since = self.clock()
                self.save()
            raise Waiting(delay, f"{len(pending)} Omnisend batches not settled yet")

    def _settle(self, batch: BatchState, status: Batch) -> None:
        ok: set[str] = set()
        errors: dict[str, str] = {}
        if status.status == GONE:  # Omnisend no longer has the batch: nothing of it can be confirmed
            for email in batch.emails:
                batch.failed[email] = f"Omnisend no longer knows batch {status.batch_id}; its outcome is unknown"
            batch.verified = True
            return
        if status.status == "finished" and status.errors_count == 0:
            ok = set(batch.emails)
        else:
            for item in self.client.get_batch_items(status.batch_id):
                if item.ok:
                    ok.add(item.email)
                else:
                    errors[item.email] = item.message or f"HTTP {item.response_code}"
        ok &= set(batch.emails)
        batch.sent.extend(e for e in batch.emails if e in ok and e not in batch.sent)
        if status.status == "finished":
            # Every item the batch handled is either a response or an error; an item missing from both
            # was not confirmed, so it is not counted as sent.
            for email in batch.emails:
                if email not in ok:
                    batch.rejected[email] = errors.get(email, "not confirmed by Omnisend")
            batch.verified = True
        else:  # stopped for too many errors: resend what did not land, a bounded number of times
            for email, message in errors.items():
                if not _retryable(message):
                    batch.rejected[email] = message
            remaining = [e for e in batch.emails if e not in ok and e not in batch.rejected]
            if remaining and batch.attempt < STOPPED_BATCH_RETRIES:
                log.warning("batch %s stopped; resending %d items", status.batch_id, len(remaining))
                self.progress.batches.append(BatchState(remaining, attempt=batch.attempt + 1))
                batch.emails = [e for e in batch.emails if e not in remaining]
            else:
                for email in remaining:
                    batch.failed[email] = "Omnisend stopped the batch (too many errors); retries used up"
            batch.verified = True

    def _outcome(self) -> DeliveryOutcome:
        sent: set[str] = set()
        rejected: dict[str, str] = {}
        failed: dict[str, str] = {}
        for batch in self.progress.batches:
            sent.update(batch.sent)
            rejected.update(batch.rejected)
            failed.update(batch.failed)
        sent.update(self.tag_only)
        failed.update(self.progress.tag_failed)
        sent -= failed.keys()
        return DeliveryOutcome(frozenset(sent), rejected, failed)

    def _tag(self, sent: Iterable[str]) -> None:
        calls = self._tag_calls(sent)
        for index, (tags, emails) in enumerate(calls):
            if index in self.progress.tag_calls_done:
                continue
            self.session.check()
            try:
                self.client.add_tags(emails, list(tags))
            except (RateLimitedError, TransientError):
                raise
            except OmnisendError as exc:
                for email in emails:
                    self.progress.tag_failed[email] = f"tagging failed: {exc}"
            self.progress.tag_calls_done.append(index)
            self.save()
        if calls and self.progress.batches:  # it announced its tag calls when it created its batches
            self.board.tagged()

    def _tagged(self) -> set[str]:
        """Emails whose tag call is done, or that need none."""
        sent = self._outcome().sent
        done = {email for index, (_, emails) in enumerate(self._tag_calls(sent))
                if index in self.progress.tag_calls_done for email in emails}
        return done | {email for email in sent if not self.tags_by_email.get(email)}

    def _tag_calls(self, sent: Iterable[str]) -> list[tuple[tuple[str, ...], list[str]]]:
        """Emails grouped by their tag set, at most MAX_TAG_EMAILS a call, in a stable order."""
        groups: dict[tuple[str, ...], list[str]] = {}
        for email in sorted(set(sent)):
            tags = self.tags_by_email.get(email)
            if tags:
                groups.setdefault(tags, []).append(email)
        return [
            (tags, emails[i : i + MAX_TAG_EMAILS])
            for tags, emails in sorted(groups.items())
            for i in range(0, len(emails), MAX_TAG_EMAILS)
        ]


def _retryable(message: str) -> bool:
    # A stopped batch leaves items unprocessed or failed for transient reasons; a validation message
    # is about the item itself and would fail again.
    lowered = message.lower()
    return not any(word in lowered for word in ("invalid", "validation", "must be", "not allowed"))
