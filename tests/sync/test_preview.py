"""Preview: counts per class, bounded samples, leavers and the gate, without writing anything."""
from __future__ import annotations

from shared.mapping import email_key
from shared.sync import PreviewCollector, RowClass, plan_removals


def test_counts_samples_and_leavers(vip_state):
    collector = PreviewCollector(sample_limit=2)
    for row in range(1, 6):
        collector.add(RowClass.NEW, "VipSeg", row, f"n{row}@example.com", partition="p1.csv")
    collector.add(RowClass.UNCHANGED, "VipSeg", 9, "a@example.com")
    other = PreviewCollector(sample_limit=2)
    other.add(RowClass.NEW, "NewsSeg", 1, "n9@example.com")
    other.add(RowClass.TAG_ONLY, "NewsSeg", 2, "d@example.com")
    collector.merge(other)
    plan = plan_removals(vip_state, {"VipSeg": "Vip", "NewsSeg": "News"},
                         {"VipSeg": [email_key("a@example.com")], "NewsSeg": [email_key("d@example.com")]})
    report = collector.report(vip_state, plan).to_api()
    assert report["counts"] == {"new": 6, "changed": 0, "tagOnly": 1, "unchanged": 1}
    assert report["samples"]["new"] == [{"segment": "VipSeg", "row": 1, "email": "n1@example.com", "partition": "p1.csv"},
                                        {"segment": "VipSeg", "row": 2, "email": "n2@example.com", "partition": "p1.csv"}]
    assert report["samples"]["tagOnly"] == [{"segment": "NewsSeg", "row": 2, "email": "d@example.com"}]
    assert report["removalsHeld"] is True and "'Vip'" in report["heldReason"]
    assert report["leavers"]["Vip"] == {"tag": "Vip", "reason": "leftSegment", "decision": "hold", "carriers": 3, "members": 1,
                                        "leavers": 2, "percent": 66.67, "detail": plan.held[0].detail,
                                        "sample": ["b@example.com", "c@example.com"]}
    assert report["leavers"]["News"]["sample"] == ["c@example.com"]
