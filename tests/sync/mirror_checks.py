"""Play a scenario through a `Driver` and check Omnisend after every run, from the scenario alone.

After every run, whatever happened:
  - hand-made tags stay (other names on anyone; segment-named ones on contacts the export never tagged);
  - the export adds a tag only to a member of that tag's segment, and never removes a tag from one;
  - a contact's fields change only to the values of its latest row.
After a run that ended (not cancelled), additionally:
  - every member whose rows succeeded holds the latest fields, and (unless tag calls failed) its tags;
  - the export's tags on a contact are exactly its segments' tags, except a tag whose segment read no
    valid email (nothing is removed then), tags whose removals the gate held, and any while tag calls
    fail;
  - the gate holds exactly when the leavers of a tag are more than maxRemovalPercent of the contacts
    carrying it once its segment is tagged (members + leavers).
A preview writes nothing and predicts the classes and the gate of the incremental run that follows.
An approval removes the held tags from every contact outside the segment.
After a run where nothing went wrong, the same export again writes nothing and changes nothing.
"""
from __future__ import annotations

from collections import defaultdict

from shared.sync import SyncMode

from .scenarios import Driver, Observed, RunReport, Scenario, Step, quiet


def play(scenario: Scenario, driver: Driver) -> None:
    handmade: dict[str, set[str]] = defaultdict(set)
    for number, step in enumerate(scenario.steps, 1):
        for hand in step.hand_tags:
            driver.hand_tag(hand.email, hand.tag)
            handmade[hand.email].add(hand.tag)
        where = f"step {number}"
        before = driver.observe()
        report = driver.run(step)
        after = driver.observe()
        if step.mode is SyncMode.PREVIEW:
            assert report.writes == 0 and after == before, f"{where}: a preview wrote to Omnisend"
            preview, step = report, quiet(step)
            report = driver.run(step)
            after = driver.observe()
            assert (report.classes, report.held_tags) == (preview.classes, preview.held_tags), \
                f"{where}: the preview predicted {preview}, the run did {report}"
        check_every_run(where, scenario, step, handmade, before, after)
        if report.status != "cancelled":
            check_ended_run(where, scenario, step, handmade, before, after, report)
        if step.approve and report.held_tags:
            driver.approve_removals()
            after = driver.observe()
            check_approved(where, scenario, step, handmade, after, report.held_tags)
        if step.clean:
            rerun = driver.run(step.rerun())
            assert rerun.writes == 0, f"{where}: a rerun without changes wrote {rerun.writes} times ({rerun})"
            assert driver.observe() == after, f"{where}: a rerun without changes changed Omnisend"
            assert set(rerun.classes) <= {"unchanged"}, f"{where}: rerun classes {rerun.classes}"


def _export_tags(contact: Observed | None, handmade: set[str]) -> set[str]:
    return set(contact.tags) - handmade if contact else set()


def check_every_run(where: str, scenario: Scenario, step: Step, handmade, before: dict[str, Observed],
                    after: dict[str, Observed]) -> None:
    assert set(before) <= set(after), f"{where}: contacts disappeared"
    members = set().union(*step.members.values())
    for email, contact in after.items():
        expected = step.expected_tags(email, scenario.tagging)
        hand = handmade[email]
        assert hand <= contact.tags, f"{where}: {email} lost hand-made tag(s) {hand - contact.tags}"
        old = before.get(email)
        added = _export_tags(contact, hand) - _export_tags(old, hand)
        assert added <= expected, f"{where}: {email} got tag(s) {added - expected} of segments it is not in"
        removed = (set(old.tags) if old else set()) - contact.tags
        assert not removed & expected, f"{where}: {email} lost tag(s) {removed & expected} of its segments"
        if old is None or old.fields != contact.fields:
            changed = {k: v for k, v in contact.fields.items() if (old.fields.get(k) if old else None) != v}
            assert email in members, f"{where}: {email} is in no segment but its fields changed"
            body = step.body(email)
            assert all(body.get(k) == v for k, v in changed.items()), \
                f"{where}: {email} fields changed to {changed}, its row says {body}"


def check_ended_run(where: str, scenario: Scenario, step: Step, handmade, before: dict[str, Observed],
                    after: dict[str, Observed], report: RunReport) -> None:
    for email in set().union(*step.members.values()) - step.failing:
        contact = after.get(email)
        assert contact is not None, f"{where}: member {email} is not in Omnisend"
        body = {k: v for k, v in step.body(email).items() if k != "identifiers"}
        assert {k: contact.fields.get(k) for k in body} == body, f"{where}: {email} holds {contact.fields}, not {body}"
        if not step.tag_calls_fail:
            missing = step.expected_tags(email, scenario.tagging) - contact.tags
            assert not missing, f"{where}: member {email} lacks tag(s) {missing}"
    if not scenario.tagging:
        assert not report.held_tags
        return
    lingering = {step.tags[s] for s, members in step.members.items() if not members} | set(report.held_tags)
    for email, contact in after.items() if not step.tag_calls_fail else ():  # failed removals keep tags
        extra = _export_tags(contact, handmade[email]) - step.expected_tags(email, True) - lingering
        assert not extra, f"{where}: {email} still carries tag(s) {extra} of segments it left"
    held = set()
    for segment, members in step.members.items():
        tag = step.tags[segment]
        carriers = {e for e, c in before.items() if tag in _export_tags(c, handmade[e])}
        leavers = carriers - members
        if members and leavers and len(leavers) * 100 > scenario.max_removal_percent * len(members | leavers):
            held.add(tag)
    assert set(report.held_tags) == held, f"{where}: the gate held {set(report.held_tags)}, expected {held}"


def check_approved(where: str, scenario: Scenario, step: Step, handmade, after: dict[str, Observed],
                   held: frozenset[str]) -> None:
    for email, contact in after.items():
        left = (_export_tags(contact, handmade[email]) & held) - step.expected_tags(email, scenario.tagging)
        assert not left, f"{where}: approved removals left tag(s) {left} on {email}"
