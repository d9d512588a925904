"""Which tags a run takes off which contacts: only tags the export itself added, and only behind a gate.

For every tag in the state's table:
  - still one of the export's tags: the contacts the state says carry it and that are not in its
    segment as read by this run are leavers. A segment without a single valid email removes nothing
    (`noMembers`: an empty read is likelier a broken export or mapping than an empty segment). More
    leavers than `max_removal_percent` of the contacts carrying the tag once this run has tagged its
    segment (members + leavers): the removals are held (`hold`) until approved. Counting the joiners
    in keeps the decision the same on a rerun, after they were tagged.
  - no longer one of the export's tags (renamed, segment dropped, tagging turned off): retired; every
    carrier loses it, ungated, because the export's own configuration asked for it.
A contact the export never tagged is never a carrier, so a same-named tag made by hand stays.

Membership is every valid email of the segment as read (sent or not): a row that failed to send keeps
its contact's tag. Contacts in no segment of the run are `departed`: the state forgets them once they
carry none of the export's tags (only when every segment had members, so "in no segment" is known).
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from enum import Enum
from itertools import compress
from operator import gt
from typing import Iterator, Mapping, Sequence

from .state import SyncState

DEFAULT_MAX_REMOVAL_PERCENT = 20.0


class RemovalReason(str, Enum):
    LEFT_SEGMENT = "leftSegment"
    TAG_RETIRED = "tagRetired"


class RemovalDecision(str, Enum):
    APPLY = "apply"  # remove the tag from the leavers now
    HOLD = "hold"  # over the gate: keep the tag until someone approves the removals
    NO_MEMBERS = "noMembers"  # the segment had no valid email this run: remove nothing
    NOTHING = "nothing"  # no carrier left


@dataclass(frozen=True)
class TagRemoval:
    tag: str
    reason: RemovalReason
    decision: RemovalDecision
    carriers: int  # contacts the export tagged with `tag` before this run
    positions: array = field(repr=False)  # ascending positions in the state of the contacts to untag
    detail: str = ""
    members: int = 0  # distinct valid emails of the tag's segment in this run

    @property
    def leavers(self) -> int:
        return len(self.positions)

    @property
    def percent(self) -> float:
        """Leavers as a share of the contacts carrying the tag once this run's members are tagged
        (of the carriers, for a retired tag)."""
        base = self.carriers if self.reason is RemovalReason.TAG_RETIRED else self.members + self.leavers
        return round(100.0 * self.leavers / base, 2) if base else 0.0

    def to_api(self) -> dict:
        body = {"tag": self.tag, "reason": self.reason.value, "decision": self.decision.value,
                "carriers": self.carriers, "members": self.members, "leavers": self.leavers,
                "percent": self.percent}
        if self.detail:
            body["detail"] = self.detail
        return body


@dataclass(frozen=True)
class RemovalPlan:
    removals: tuple[TagRemoval, ...]
    departed: array = field(repr=False)  # ascending positions of contacts in no segment of the run

    @property
    def held(self) -> tuple[TagRemoval, ...]:
        return tuple(r for r in self.removals if r.decision is RemovalDecision.HOLD)

    @property
    def to_apply(self) -> tuple[TagRemoval, ...]:
        return tuple(r for r in self.removals if r.decision is RemovalDecision.APPLY)

    @property
    def held_reason(self) -> str:
        return "; ".join(r.detail for r in self.held)

    def keys(self, state: SyncState, removal: TagRemoval) -> array:
        """The email keys of a removal's contacts (e.g. to keep held removals for an approval)."""
        return array("Q", map(state.keys.__getitem__, removal.positions))

    def emails(self, state: SyncState, removal: TagRemoval) -> Iterator[str]:
        return state.emails_at(removal.positions)


def plan_removals(state: SyncState, segment_tags: Mapping[str, str | None],
                  members: Mapping[str, Sequence[int]], *,
                  max_removal_percent: float = DEFAULT_MAX_REMOVAL_PERCENT) -> RemovalPlan:
    """The removals of a run that read `members` (segment -> distinct email keys of its valid rows, in
    any order) for an export whose segments carry `segment_tags` (segment -> tag, None when not tagged)."""
    if not 0 <= max_removal_percent <= 100:
        raise ValueError(f"maxRemovalPercent must be between 0 and 100, got {max_removal_percent}")
    missing = sorted(set(segment_tags) - set(members))
    if missing:
        raise ValueError(f"no membership given for segment(s) {missing}")
    count = len(state)
    in_segment = {segment: _positions_flags(state, keys) for segment, keys in members.items()}
    empty = {segment for segment, keys in members.items() if not keys}
    segments_of: dict[str, list[str]] = {}
    for segment, tag in segment_tags.items():
        if tag is not None:
            segments_of.setdefault(tag, []).append(segment)

    removals = []
    for bit, tag in enumerate(state.tags):
        carrier_flags = bytes(map(bool, map((1 << bit).__and__, state.masks)))
        carriers = carrier_flags.count(1)
        segments = segments_of.get(tag)
        if segments is None:
            positions = array("I", compress(range(count), carrier_flags))
            decision = RemovalDecision.APPLY if carriers else RemovalDecision.NOTHING
            removals.append(TagRemoval(tag, RemovalReason.TAG_RETIRED, decision, carriers, positions,
                                       "the export no longer sets this tag"))
            continue
        if any(segment in empty for segment in segments):
            removals.append(TagRemoval(tag, RemovalReason.LEFT_SEGMENT, RemovalDecision.NO_MEMBERS, carriers,
                                       array("I"), f"segment {segments[0]!r} had no valid email in this run: "
                                       "no contact loses the tag", 0))
            continue
        member_flags = in_segment[segments[0]]
        for other in segments[1:]:
            member_flags = bytes(map(max, member_flags, in_segment[other]))
        positions = array("I", compress(range(count), map(gt, carrier_flags, member_flags)))
        member_count = len(members[segments[0]]) if len(segments) == 1 else len(set().union(*map(members.get, segments)))
        removals.append(_gate(tag, carriers, member_count, positions, max_removal_percent))

    departed = array("I")
    if members and not empty:
        every = list(in_segment.values())
        anywhere = every[0]
        for flags in every[1:]:
            anywhere = bytes(map(max, anywhere, flags))
        departed = array("I", compress(range(count), anywhere.translate(_INVERT)))
    return RemovalPlan(tuple(removals), departed)


def _gate(tag: str, carriers: int, members: int, positions: array, max_percent: float) -> TagRemoval:
    leavers = len(positions)
    if not leavers:
        return TagRemoval(tag, RemovalReason.LEFT_SEGMENT, RemovalDecision.NOTHING, carriers, positions, "", members)
    base = members + leavers  # the contacts carrying the tag once this run has tagged its members
    if leavers * 100 > max_percent * base:
        detail = (f"{leavers} of the {base} contacts tagged {tag!r} left its segment "
                  f"({100 * leavers / base:.1f}%, over maxRemovalPercent {max_percent:g}%)")
        return TagRemoval(tag, RemovalReason.LEFT_SEGMENT, RemovalDecision.HOLD, carriers, positions, detail, members)
    return TagRemoval(tag, RemovalReason.LEFT_SEGMENT, RemovalDecision.APPLY, carriers, positions, "", members)


def _positions_flags(state: SyncState, keys: Sequence[int]) -> bytes:
    """One byte per state position: 1 where the contact's key is among `keys`."""
    flags = bytearray(len(state))
    find = state.index.find
    for key in keys:
        i = find(key)
        if i >= 0:
            flags[i] = 1
    return bytes(flags)


_INVERT = bytes([1]) + bytes(255)  # byte 0 -> 1, anything else -> 0
