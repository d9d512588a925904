"""Random histories of an export's segments, independent of whatever runs them.

A `Scenario` is an export (its segments, in order; whether it tags; its removal gate) and a sequence
of `Step`s, one per run: the segments' members and their fields as Customer Insights exported them
that day, the tag each segment carries (a rename changes it), tags a marketer put on contacts by hand
before the run, the emails Omnisend rejects during the run, whether tag calls fail, whether the run is
cancelled after some writes, the run's mode, and whether held removals are approved afterwards.

Anything implementing `Driver` can play a scenario: `tests/sync/reference_engine.py` (the decisions of
`shared.sync` over an in-memory Omnisend) today, the real engine against the sandbox later.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

from hypothesis import strategies as st

from shared.mapping import contact_request
from shared.sync import SyncMode

PEOPLE = tuple(f"p{i}@example.com" for i in range(10))
OUTSIDERS = tuple(f"o{i}@example.com" for i in range(3))  # never in a segment; may carry same-named tags
SEGMENTS = ("Vip", "News", "Lapsed")
TAG_NAMES = {"Vip": ("Vip", "VIP members"), "News": ("News", "Newsletter"), "Lapsed": ("Lapsed",)}
HAND_TAGS = ("Wholesale", "Influencer")  # names no segment ever uses
FIRST_NAMES = ("Ann", "Bo")
CITIES = ("", "Vilnius", "Oslo")
COUNTRIES = ("", "LT", "Germany")


@dataclass(frozen=True)
class HandTag:
    email: str
    tag: str


@dataclass(frozen=True)
class Step:
    members: Mapping[str, frozenset[str]]  # segment -> emails of its valid rows
    fields: Mapping[str, Mapping[str, str]]  # email -> contact fields (firstName, city, country)
    tags: Mapping[str, str]  # segment -> the tag it carries in this run
    hand_tags: tuple[HandTag, ...] = ()
    failing: frozenset[str] = frozenset()  # Omnisend rejects these emails' upserts in this run
    tag_calls_fail: bool = False  # POST and DELETE /contacts/tags fail in this run
    cancel_after: int | None = None  # the run is cancelled once it has made this many writes
    mode: SyncMode = SyncMode.INCREMENTAL
    approve: bool = False

    def body(self, email: str) -> dict:
        return contact_request(email, **self.fields[email])

    def expected_tags(self, email: str, tagging: bool) -> set[str]:
        if not tagging:
            return set()
        return {self.tags[s] for s, members in self.members.items() if email in members}

    @property
    def clean(self) -> bool:
        """Nothing goes wrong in this run: every row reaches Omnisend and the run ends."""
        return not self.failing and not self.tag_calls_fail and self.cancel_after is None

    def rerun(self) -> "Step":
        """The same export again, with nothing going wrong and nothing new: it must write nothing."""
        return Step(self.members, self.fields, self.tags)


@dataclass(frozen=True)
class Scenario:
    segments: tuple[str, ...]
    tagging: bool
    max_removal_percent: float
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Observed:
    """A contact as Omnisend holds it."""

    fields: Mapping[str, str]
    tags: frozenset[str]


@dataclass(frozen=True)
class RunReport:
    status: str  # "succeeded" | "partiallySucceeded" | "cancelled"
    classes: Mapping[str, int]  # row class -> rows (first rows of each contact in the run)
    writes: int  # requests that change Omnisend (contact upserts, tag calls)
    held_tags: frozenset[str] = frozenset()


class Driver(Protocol):
    def hand_tag(self, email: str, tag: str) -> None: ...
    def run(self, step: Step) -> RunReport: ...
    def approve_removals(self) -> int: ...  # writes
    def observe(self) -> dict[str, Observed]: ...


# --------------------------------------------------------------------------- generation


@st.composite
def steps(draw, segments: tuple[str, ...], tagging: bool) -> Step:
    members = {s: frozenset(draw(st.sets(st.sampled_from(PEOPLE), max_size=6))) for s in segments}
    everyone = sorted(set().union(*members.values()))
    fields = {email: {"firstName": draw(st.sampled_from(FIRST_NAMES)), "city": draw(st.sampled_from(CITIES)),
                      "country": draw(st.sampled_from(COUNTRIES))} for email in everyone}
    tags = {s: draw(st.sampled_from(TAG_NAMES[s])) for s in segments}
    same_named = [tag for names in TAG_NAMES.values() for tag in names]
    hand_tags = draw(st.lists(st.one_of(
        st.builds(HandTag, st.sampled_from(PEOPLE + OUTSIDERS), st.sampled_from(HAND_TAGS)),
        st.builds(HandTag, st.sampled_from(OUTSIDERS), st.sampled_from(same_named)),
    ), max_size=2))
    trouble = draw(st.sampled_from(["none", "none", "none", "failing", "tags", "cancel"]))
    return Step(
        members=members,
        fields=fields,
        tags=tags,
        hand_tags=tuple(hand_tags),
        failing=frozenset(draw(st.sets(st.sampled_from(everyone), min_size=1, max_size=2))) if trouble == "failing" and everyone else frozenset(),
        tag_calls_fail=trouble == "tags" and tagging,
        cancel_after=draw(st.integers(0, 4)) if trouble == "cancel" else None,
        mode=draw(st.sampled_from([SyncMode.INCREMENTAL] * 4 + [SyncMode.FULL, SyncMode.PREVIEW])),
        approve=draw(st.booleans()),
    )


@st.composite
def scenarios(draw, max_steps: int = 6) -> Scenario:
    segments = tuple(draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3, unique=True)))
    tagging = draw(st.sampled_from([True, True, True, False]))  # mostly exports that tag
    percent = draw(st.sampled_from([20.0, 50.0, 100.0]))
    history = tuple(draw(st.lists(steps(segments, tagging), min_size=1, max_size=max_steps)))
    return Scenario(segments, tagging, percent, history)


def quiet(step: Step, mode: SyncMode = SyncMode.INCREMENTAL) -> Step:
    """`step` with nothing going wrong, in `mode`."""
    return Step(step.members, step.fields, step.tags, mode=mode)

