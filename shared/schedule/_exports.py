"""An export's schedule as the timer and the API see it: pure decisions, no storage.

- `schedule_of(export, app)`: what the timer starts the export on: its own schedule, the app's
  EXPORT_SCHEDULE (UTC) when its `schedule` is null, or None when `runOn` lacks "schedule".
- `window_start(export, last_checked)`: where the timer's look for the export begins: the later of
  the cursor and the time the export was last saved, so a new (or just edited) export never runs for
  a due time before it existed in its current form.
- `scheduled_run_id(export_id, due_at)`: the run id of the export's run for one due time. Derived,
  not random, so that a timer instance that claimed a due time and died before recording its run can
  be finished by a later tick: the run either exists under that id or it does not.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ._timing import Schedule, effective_schedule

if TYPE_CHECKING:  # documents imports nothing of this package; importing it at run time would be circular
    from ..documents import Export

UTC = timezone.utc


def own_schedule(export: "Export") -> Schedule | None:
    """The export's own schedule (None: it follows the app's). Raises InvalidScheduleError if the
    stored one no longer parses (e.g. a zone the host's time zone database dropped)."""
    return None if export.schedule is None else Schedule.from_dict(export.schedule)


def schedule_of(export: "Export", app: Schedule) -> Schedule | None:
    if "schedule" not in export.run_on:
        return None
    return effective_schedule(own_schedule(export), app)


def saved_at(export: "Export") -> datetime:
    """When the export was last saved (its `updatedAt`, else `createdAt`), as an aware UTC datetime."""
    text = export.updated_at or export.created_at
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)


def window_start(export: "Export", last_checked: datetime | None) -> datetime:
    saved = saved_at(export)
    return saved if last_checked is None else max(saved, last_checked.astimezone(UTC))


def scheduled_run_id(export_id: str, due_at: datetime) -> str:
    """`<due time>-<8 hex of (export, due time)>`: the shape of every run id (time first, for sorting)."""
    due_at = due_at.astimezone(UTC)
    digest = hashlib.sha256(f"{export_id}|{due_at:%Y%m%dT%H%M%SZ}".encode()).hexdigest()[:8]
    return f"{due_at:%Y%m%dT%H%M%S}-{digest}"
