"""Model-based property test: random histories of an export's segments, played through the sync
decisions against an in-memory Omnisend (tests/sync/reference_engine.py), checked after every run
(tests/sync/mirror_checks.py). The same scenarios and checks are meant to drive the run engine
against the sandbox once it calls shared.sync."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from shared.sync import SyncMode

from .mirror_checks import play
from .reference_engine import ReferenceDriver
from .scenarios import HandTag, Scenario, Step, scenarios


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_mirror_sync_holds_its_promises(scenario):
    play(scenario, ReferenceDriver(scenario))


def day(members: dict[str, set[str]], names: dict[str, str], tags=None, **options) -> Step:
    return Step({s: frozenset(m) for s, m in members.items()},
                {e: {"firstName": names.get(e, "Ann")} for m in members.values() for e in m},
                tags or {s: s for s in members}, **options)


def test_the_issue_example_in_small():
    """Next day: one contact leaves both segments, one leaves one of two, one changes their first name,
    two are new, and a marketer tagged an unrelated contact HighValue by hand. Only the differences are
    written and the hand-made tag stays."""
    people = [f"p{i}@example.com" for i in range(12)]
    first = {"HighValue": set(people[:10]), "News": set(people[:10])}
    second = {"HighValue": set(people[1:12]), "News": set(people[1:10]) - {"p4@example.com"}}
    scenario = Scenario(("HighValue", "News"), True, 20.0, (
        day(first, {}),
        day(second, {"p3@example.com": "Bo"}, hand_tags=(HandTag("o1@example.com", "HighValue"),)),
    ))
    play(scenario, ReferenceDriver(scenario))

    driver = ReferenceDriver(scenario, batch_size=100, tag_call_size=250)
    driver.run(scenario.steps[0])
    driver.hand_tag("o1@example.com", "HighValue")
    report = driver.run(scenario.steps[1])
    assert report.classes == {"new": 2, "changed": 1, "unchanged": 8} and not report.held_tags
    # One upsert batch (p3, p10, p11), one tag call (p10, p11 get HighValue), one removal call per tag
    # (HighValue from p0; News from p0 and p4).
    assert report.writes == 4
    seen = driver.observe()
    assert seen["o1@example.com"].tags == {"HighValue"} and seen["p0@example.com"].tags == set()
    assert seen["p4@example.com"].tags == {"HighValue"} and seen["p3@example.com"].fields["firstName"] == "Bo"


def test_a_truncated_export_does_not_untag_the_segment():
    members = {"Vip": {f"p{i}@example.com" for i in range(10)}}
    truncated = {"Vip": {"p0@example.com"}}
    scenario = Scenario(("Vip",), True, 20.0, (day(members, {}), day(truncated, {})))
    driver = ReferenceDriver(scenario)
    play(scenario, driver)
    assert sum("Vip" in c.tags for c in driver.observe().values()) == 10  # 9 of 10 left: held by the gate


def test_rename_moves_the_tag_on_the_next_run():
    members = {"Vip": {"p0@example.com", "p1@example.com"}}
    scenario = Scenario(("Vip",), True, 20.0, (day(members, {}), day(members, {}, tags={"Vip": "VIP members"}),
                                               day(members, {}, tags={"Vip": "VIP members"}, mode=SyncMode.FULL)))
    driver = ReferenceDriver(scenario)
    play(scenario, driver)
    assert {e: c.tags for e, c in driver.observe().items()} == {
        "p0@example.com": {"VIP members"}, "p1@example.com": {"VIP members"}}
