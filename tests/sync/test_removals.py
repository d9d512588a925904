"""Ownership: which tags a run removes from whom, the removal gate, and what the state forgets."""
from __future__ import annotations

import pytest

from shared.mapping import email_key
from shared.sync import RemovalDecision, RemovalReason, plan_removals

from .conftest import make_state


def keys(*emails: str) -> list[int]:
    return [email_key(e) for e in emails]


def by_tag(plan):
    return {r.tag: r for r in plan.removals}


def test_leavers_are_carriers_not_read_in_the_segment(vip_state):
    plan = plan_removals(vip_state, {"VipSeg": "Vip", "NewsSeg": "News"},
                         {"VipSeg": keys("a@example.com", "b@example.com", "d@example.com", "x@example.com"),
                          "NewsSeg": keys("c@example.com")}, max_removal_percent=50)
    vip = by_tag(plan)["Vip"]
    assert (vip.decision, vip.reason, vip.carriers, vip.leavers) == (RemovalDecision.APPLY, RemovalReason.LEFT_SEGMENT, 3, 1)
    assert list(plan.emails(vip_state, vip)) == ["c@example.com"]
    assert list(plan.keys(vip_state, vip)) == keys("c@example.com")
    assert by_tag(plan)["News"].decision is RemovalDecision.NOTHING
    assert plan.to_apply == (vip,) and plan.held == ()
    assert len(plan.departed) == 0  # every contact is in some segment


def test_a_contact_never_tagged_by_the_export_is_never_a_leaver():
    state = make_state({"member@example.com": ("M", {"HighValue"}), "byhand@example.com": ("H", set())}, ("HighValue",))
    # byhand@ carries a hand-made HighValue tag in Omnisend; the state says the export never set it.
    plan = plan_removals(state, {"HighValue": "HighValue"}, {"HighValue": keys("member@example.com")})
    assert by_tag(plan)["HighValue"].leavers == 0


def test_gate_holds_removals_over_the_limit(vip_state):
    plan = plan_removals(vip_state, {"VipSeg": "Vip", "NewsSeg": "News"},
                         {"VipSeg": keys("a@example.com"), "NewsSeg": keys("c@example.com")})
    vip = by_tag(plan)["Vip"]
    assert vip.decision is RemovalDecision.HOLD and vip.leavers == 2 and vip.percent == 66.67
    assert "2 of the 3 contacts tagged 'Vip' left its segment (66.7%, over maxRemovalPercent 20%)" == vip.detail
    assert plan.held == (vip,) and plan.held_reason == vip.detail and plan.to_apply == ()


@pytest.mark.parametrize("percent,decision", [(33.33, RemovalDecision.HOLD), (33.34, RemovalDecision.APPLY),
                                              (100, RemovalDecision.APPLY), (0, RemovalDecision.HOLD)])
def test_gate_boundary(vip_state, percent, decision):
    plan = plan_removals(vip_state, {"VipSeg": "Vip", "NewsSeg": "News"},
                         {"VipSeg": keys("a@example.com", "b@example.com"), "NewsSeg": keys("c@example.com")},
                         max_removal_percent=percent)
    assert by_tag(plan)["Vip"].decision is decision  # 1 of 3 carriers leaves: 33.33...%


def test_a_segment_without_valid_emails_removes_nothing(vip_state):
    plan = plan_removals(vip_state, {"VipSeg": "Vip", "NewsSeg": "News"}, {"VipSeg": [], "NewsSeg": keys("c@example.com")},
                         max_removal_percent=100)
    vip = by_tag(plan)["Vip"]
    assert vip.decision is RemovalDecision.NO_MEMBERS and vip.leavers == 0 and "no valid email" in vip.detail
    assert len(plan.departed) == 0  # "in no segment" is unknown while a segment read empty


def test_renamed_tag_is_retired_and_removed_ungated(vip_state):
    plan = plan_removals(vip_state, {"VipSeg": "VIP members", "NewsSeg": "News"},
                         {"VipSeg": keys("a@example.com", "b@example.com", "c@example.com"),
                          "NewsSeg": keys("c@example.com")})
    old = by_tag(plan)["Vip"]
    assert (old.reason, old.decision, old.leavers) == (RemovalReason.TAG_RETIRED, RemovalDecision.APPLY, 3)


def test_departed_contacts(vip_state):
    plan = plan_removals(vip_state, {"VipSeg": None}, {"VipSeg": keys("a@example.com", "c@example.com")})
    assert list(vip_state.emails_at(plan.departed)) == ["b@example.com", "d@example.com"]


def test_bad_arguments(vip_state):
    with pytest.raises(ValueError, match="between 0 and 100"):
        plan_removals(vip_state, {}, {}, max_removal_percent=120)
    with pytest.raises(ValueError, match=r"no membership given for segment\(s\) \['VipSeg'\]"):
        plan_removals(vip_state, {"VipSeg": "Vip"}, {})


def test_the_gate_counts_this_runs_joiners(vip_state):
    """2 of 3 carriers leave, while 3 people join: 2 of the 5 contacts carrying Vip after this run."""
    members = keys("a@example.com", "d@example.com", "x@example.com", "y@example.com")
    plan = plan_removals(vip_state, {"VipSeg": "Vip", "NewsSeg": "News"},
                         {"VipSeg": members, "NewsSeg": keys("c@example.com")}, max_removal_percent=40)
    vip = by_tag(plan)["Vip"]
    assert (vip.decision, vip.carriers, vip.members, vip.leavers, vip.percent) == (RemovalDecision.APPLY, 3, 4, 2, 33.33)
    plan = plan_removals(vip_state, {"VipSeg": "Vip", "NewsSeg": "News"},
                         {"VipSeg": members, "NewsSeg": keys("c@example.com")}, max_removal_percent=33)
    assert by_tag(plan)["Vip"].decision is RemovalDecision.HOLD
