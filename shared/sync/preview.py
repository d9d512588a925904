"""What an incremental run would do, without doing it: counts per row class, samples, leavers, the gate.

The planner feeds every valid row's class to a `PreviewCollector` (cheap: a counter and, for the first
`sample_limit` rows of a class, a small sample); the finisher adds the removal plan and stores the
`PreviewReport`. Nothing is written to Omnisend or to the sync state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .diff import RowClass
from .removals import RemovalDecision, RemovalPlan
from .state import SyncState

SAMPLE_LIMIT = 100


@dataclass(frozen=True)
class RowSample:
    segment: str
    row: int  # the 1-based data row within its partition, as in the rejects CSV
    email: str
    partition: str = ""

    def to_api(self) -> dict:
        body = {"segment": self.segment, "row": self.row, "email": self.email}
        if self.partition:
            body["partition"] = self.partition
        return body


@dataclass
class PreviewCollector:
    sample_limit: int = SAMPLE_LIMIT
    counts: dict[RowClass, int] = field(default_factory=lambda: dict.fromkeys(RowClass, 0))
    samples: dict[RowClass, list[RowSample]] = field(default_factory=lambda: {c: [] for c in RowClass})

    def add(self, row_class: RowClass, segment: str, row: int, email: str, partition: str = "") -> None:
        self.counts[row_class] += 1
        kept = self.samples[row_class]
        if len(kept) < self.sample_limit:
            kept.append(RowSample(segment, row, email, partition))

    def merge(self, other: "PreviewCollector") -> None:
        """Add another collector's rows (e.g. one per segment or planner pass)."""
        for row_class in RowClass:
            self.counts[row_class] += other.counts[row_class]
            room = self.sample_limit - len(self.samples[row_class])
            self.samples[row_class].extend(other.samples[row_class][:max(0, room)])

    def report(self, state: SyncState, removals: RemovalPlan) -> "PreviewReport":
        leavers = {}
        for removal in removals.removals:
            if removal.decision is RemovalDecision.NOTHING:
                continue
            sample = []
            if removal.decision is not RemovalDecision.NO_MEMBERS:
                positions = removal.positions[:self.sample_limit]
                sample = list(state.emails_at(positions))
            leavers[removal.tag] = LeaverPreview(removal.to_api(), tuple(sample))
        return PreviewReport(dict(self.counts), {c: tuple(s) for c, s in self.samples.items()}, leavers,
                             bool(removals.held), removals.held_reason)


@dataclass(frozen=True)
class LeaverPreview:
    removal: Mapping  # TagRemoval.to_api()
    sample: tuple[str, ...]  # up to SAMPLE_LIMIT emails that would lose the tag


@dataclass(frozen=True)
class PreviewReport:
    counts: Mapping[RowClass, int]
    samples: Mapping[RowClass, tuple[RowSample, ...]]
    leavers: Mapping[str, LeaverPreview]
    removals_held: bool
    held_reason: str = ""

    def to_api(self) -> dict:
        body = {
            "counts": {c.value: self.counts[c] for c in RowClass},
            "samples": {c.value: [s.to_api() for s in self.samples[c]] for c in RowClass},
            "leavers": {tag: {**leaver.removal, "sample": list(leaver.sample)} for tag, leaver in self.leavers.items()},
            "removalsHeld": self.removals_held,
        }
        if self.held_reason:
            body["heldReason"] = self.held_reason
        return body
