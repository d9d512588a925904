"""A run made only of `shared.sync`'s decisions, over the in-memory Omnisend: the reference the run
engine's planner, workers and finisher are meant to follow.

  plan      classify each segment's rows against the prior state; the first row of an email in the
            run is upserted (new, changed; every row in full mode), later segments' rows of the same
            contact only get their tag; unchanged rows cost nothing
  deliver   upsert batches, then tag calls for the contacts Omnisend holds (verified this run or
            known to the state); every verified outcome becomes a ContactChange
  finish    unless cancelled: removals planned from the prior state, held by the gate or applied;
            departed contacts forgotten; the next state from the verified changes (also when cancelled)

The state goes through its stored form after every run, as it would through blob storage.
"""
from __future__ import annotations

from collections import Counter
from operator import itemgetter

from shared.mapping import email_key
from shared.sync import (
    ACTIONS, ContactChange, RowClass, SyncAction, SyncMode, SyncState, classifier, fingerprint,
    membership_classifier, next_state, plan_removals, run_tag_table, tag_bits,
)

from .omnisend_model import OmnisendModel
from .scenarios import Observed, RunReport, Scenario, Step


class Cancelled(Exception):
    pass


class ReferenceDriver:
    def __init__(self, scenario: Scenario, *, batch_size: int = 3, tag_call_size: int = 4) -> None:
        self.scenario = scenario
        self.omnisend = OmnisendModel()
        self.state_bytes = SyncState.empty().to_bytes()
        self.batch_size, self.tag_call_size = batch_size, tag_call_size
        self.held: dict[str, list[int]] = {}  # tag -> keys whose removal waits for approval
        self.runs = 0

    # ------------------------------------------------------------------ Driver

    def hand_tag(self, email: str, tag: str) -> None:
        self.omnisend.tag_by_hand(email, tag)

    def observe(self) -> dict[str, Observed]:
        return self.omnisend.observe()

    def run(self, step: Step) -> RunReport:
        self.runs += 1
        prior = SyncState.from_bytes(self.state_bytes)
        writes_before = self.omnisend.writes
        segment_tags = {s: (step.tags[s] if self.scenario.tagging else None) for s in self.scenario.segments}
        run_tags = run_tag_table(prior.tags, [t for t in segment_tags.values() if t])
        upserts, tag_rows, classes = self._plan(prior, step, segment_tags)
        if step.mode is SyncMode.PREVIEW:
            plan = plan_removals(prior, segment_tags, self._members(step),
                                 max_removal_percent=self.scenario.max_removal_percent)
            return RunReport("succeeded", classes, 0, frozenset(r.tag for r in plan.held))
        self.held = {}  # a new run supersedes what an earlier one held
        changes: list[ContactChange] = []
        budget = [step.cancel_after]
        status, held = "succeeded", frozenset()
        try:
            sent = self._upsert(upserts, step, changes, budget)
            known = {email for email in tag_rows if prior.find(email_key(email)) >= 0} | sent
            self._tag(tag_rows, known, run_tags, step, changes, budget)
            held = self._finish(prior, step, segment_tags, run_tags, changes, budget)
            if step.failing or step.tag_calls_fail or held:
                status = "partiallySucceeded"
        except Cancelled:
            status = "cancelled"
        full_at = f"run-{self.runs}" if step.mode is SyncMode.FULL and status != "cancelled" else ""
        nxt = next_state(prior, run_tags, sorted(changes, key=itemgetter(0)), run_id=f"run-{self.runs}",
                         written_at=f"run-{self.runs}", full_at=full_at)
        self.state_bytes = nxt.to_bytes()
        return RunReport(status, classes, self.omnisend.writes - writes_before, held)

    def approve_removals(self) -> int:
        """POST /runs/{id}/approve-removals: untag the held leavers that still carry the tag."""
        state = SyncState.from_bytes(self.state_bytes)
        writes_before = self.omnisend.writes
        changes = []
        for tag, keys in self.held.items():
            bit = state.tag_bit(tag)
            positions = sorted(p for p in map(state.find, keys) if p >= 0 and state.masks[p] & bit)
            emails = list(state.emails_at(positions))
            for start in range(0, len(emails), self.tag_call_size):
                part = emails[start:start + self.tag_call_size]
                if self.omnisend.change_tags(part, [tag], add=False):
                    changes += [ContactChange(email_key(e), untagged=bit) for e in part]
        self.held = {}
        nxt = next_state(state, state.tags, sorted(changes, key=itemgetter(0)), run_id=state.info.run_id + "+approved",
                         written_at=state.info.written_at)
        self.state_bytes = nxt.to_bytes()
        return self.omnisend.writes - writes_before

    # ------------------------------------------------------------------ the phases

    def _members(self, step: Step) -> dict[str, list[int]]:
        return {s: [email_key(e) for e in step.members[s]] for s in self.scenario.segments}

    def _plan(self, prior: SyncState, step: Step, segment_tags: dict):
        upserts: dict[str, tuple[int, dict]] = {}  # email -> (fingerprint, body), in run order
        tag_rows: dict[str, list[str]] = {}  # email -> tags it gets in this run
        delivered: set[str] = set()
        classes: Counter = Counter()
        actions = ACTIONS[step.mode]
        for segment in self.scenario.segments:
            tag = segment_tags[segment]
            classify = classifier(prior, tag)
            earlier = membership_classifier(prior, tag) if tag else None
            for email in sorted(step.members[segment]):
                key = email_key(email)
                if email in delivered:  # a later segment's row of a contact this run delivers already
                    if tag and (step.mode is SyncMode.FULL or earlier(key) is RowClass.TAG_ONLY):
                        tag_rows.setdefault(email, []).append(tag)
                    continue
                delivered.add(email)
                body = step.body(email)
                fp = fingerprint(body)
                row_class = classify(key, fp)
                classes[row_class.value] += 1
                action = actions[row_class]
                if action is SyncAction.UPSERT:
                    upserts[email] = (fp, body)
                if tag and action is not SyncAction.SKIP:
                    tag_rows.setdefault(email, []).append(tag)
        return upserts, tag_rows, dict(classes)

    def _write(self, budget: list) -> None:
        if budget[0] is not None:
            if budget[0] <= 0:
                raise Cancelled()
            budget[0] -= 1

    def _upsert(self, upserts: dict, step: Step, changes: list, budget: list) -> set[str]:
        sent: set[str] = set()
        emails = list(upserts)
        for start in range(0, len(emails), self.batch_size):
            part = emails[start:start + self.batch_size]
            self._write(budget)
            results = self.omnisend.upsert_batch([upserts[e][1] for e in part], step.failing)
            for email, ok in results.items():
                if ok:
                    sent.add(email)
                    changes.append(ContactChange(email_key(email), fingerprint=upserts[email][0], email=email))
        return sent

    def _tag(self, tag_rows: dict, known: set[str], run_tags, step: Step, changes: list, budget: list) -> None:
        by_tag: dict[str, list[str]] = {}
        for email, tags in tag_rows.items():
            if email in known:  # Omnisend ignores tag calls for contacts it does not hold
                for tag in tags:
                    by_tag.setdefault(tag, []).append(email)
        for tag, emails in sorted(by_tag.items()):
            for start in range(0, len(emails), self.tag_call_size):
                part = emails[start:start + self.tag_call_size]
                self._write(budget)
                if self.omnisend.change_tags(part, [tag], add=True, fail=step.tag_calls_fail):
                    bit = tag_bits(run_tags, [tag])
                    changes += [ContactChange(email_key(e), tagged=bit, email=e) for e in part]

    def _finish(self, prior: SyncState, step: Step, segment_tags: dict, run_tags, changes: list,
                budget: list) -> frozenset[str]:
        plan = plan_removals(prior, segment_tags, self._members(step),
                             max_removal_percent=self.scenario.max_removal_percent)
        for removal in plan.to_apply:
            bit = tag_bits(run_tags, [removal.tag])
            emails = list(plan.emails(prior, removal))
            for start in range(0, len(emails), self.tag_call_size):
                part = emails[start:start + self.tag_call_size]
                self._write(budget)
                if self.omnisend.change_tags(part, [removal.tag], add=False, fail=step.tag_calls_fail):
                    changes += [ContactChange(email_key(e), untagged=bit) for e in part]
        self.held = {r.tag: list(plan.keys(prior, r)) for r in plan.held}
        changes += [ContactChange(prior.keys[p], forget=True) for p in plan.departed]
        return frozenset(self.held)
