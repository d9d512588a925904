"""What a run must produce, computed from the generator's per-row expectations and the run rules
(independently of the engine): first occurrence upserted, same-segment repeats rejected as duplicates,
repeats of an earlier segment only tagged (or, when the export does not tag, unchanged). A first run:
every contact is new to the export's sync state."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from tools.sample_export import Kind, partition_bounds

SENDABLE = (Kind.VALID, Kind.TRICKY, Kind.DUPLICATE)


@dataclass
class ExpectedRun:
    first_names: dict[str, str] = field(default_factory=dict)  # email -> first name of its first row
    # email -> birthdate, gender and customProperties of its first row (profiles with custom fields)
    custom_fields: dict[str, dict] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    rejects: dict[tuple[str, int, int], str] = field(default_factory=dict)  # (segment, partition, row) -> reason
    rows: int = 0
    sent: int = 0
    unchanged: int = 0

    @property
    def counts(self) -> dict[str, int]:
        added = len(self.first_names)
        return {"rows": self.rows, "sent": self.sent, "rejected": len(self.rejects), "failed": 0,
                "added": added, "updated": self.sent - added, "unchanged": self.unchanged}


def expected_run(segments: dict, partitions: int, *, tagged: bool = True) -> ExpectedRun:
    result = ExpectedRun()
    earlier: set[str] = set()
    for name, profiles in segments.items():
        current: set[str] = set()
        for number, (start, stop) in enumerate(partition_bounds(profiles.count, partitions), 1):
            for i in range(start, stop):
                result.rows += 1
                where = (name, number, i - start + 1)
                row = profiles.expected(i)
                if row.kind not in SENDABLE:
                    result.rejects[where] = row.reason.value
                elif row.email in current:
                    result.rejects[where] = "duplicate"
                elif row.email in earlier and not tagged:
                    current.add(row.email)
                    result.unchanged += 1
                else:
                    current.add(row.email)
                    result.sent += 1
                    if row.email not in earlier:
                        result.first_names[row.email] = profiles.fields(i)[1].strip()
                        if "BirthDate" in profiles.columns:
                            result.custom_fields[row.email] = profiles.expected_fields(i)
                    if tagged:
                        result.tags.setdefault(row.email, set()).add(name)
        earlier |= current
    return result


_PARTITION = re.compile(r"_(\d+)\.csv$")


def rejects_by_place(csv_rows: list[dict]) -> dict[tuple[str, int, int], str]:
    """Rows of a run's rejects CSV keyed like ExpectedRun.rejects; fails on a row listed twice."""
    places = [(r["segment"], int(_PARTITION.search(r["partition"]).group(1)), int(r["row"])) for r in csv_rows]
    twice = [place for place, n in Counter(places).items() if n > 1]
    assert not twice, f"rows listed twice in the rejects: {twice[:5]}"
    return {place: r["reason"] for place, r in zip(places, csv_rows)}
