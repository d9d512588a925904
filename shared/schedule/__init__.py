"""Per-export schedules: a cron expression in an IANA time zone, when it is due, and exactly-once starts.

How it is meant to be called:

- **API** (create / replace an export): `Schedule.from_dict(body["schedule"], path="schedule")` for a
  non-null schedule; `InvalidScheduleError.problems` are FieldErrors (`schedule.cron`,
  `schedule.timeZone`) for a 400 `validation_failed`. Store `schedule.to_dict()` on the export, and
  show `next_run_at(effective_schedule(schedule, app_schedule(settings.export_schedule)), now)` as
  `nextRunAt` (UTC).
- **Timer** (one trigger, e.g. every 5 minutes): `cursor = read_cursor(state)`; for every export with
  `runOn` containing "schedule", `due_at = due(effective_schedule(...), window_start, now)` where
  `window_start` is the later of `cursor.last_checked` and the time the export's schedule was saved
  (on the very first look, the saved time alone); when due_at is not None and
  `claim_due_run(state, export.id, due_at)` is True, start the run (trigger "schedule"). Then
  `advance_cursor(state, cursor, now)`. A timer that was down starts each missed export once.
  shared/runs/lifecycle.py (`start_scheduled_runs`) is that timer; `schedule_of`, `window_start` and
  `scheduled_run_id` (shared/schedule/_exports.py) are its per-export decisions.
- **Planner / worker**: nothing here; a scheduled run is a run like any other.

Pure parts (`parse_cron`, `Schedule`, `due`, `next_run_at`, `latest_due`, `instant_of`) never touch
storage; the claim and cursor (`claim_due_run`, `read_cursor`, `advance_cursor`) are the I/O layer.
"""
from ._claim import (
    CLAIMS_PREFIX, CURSOR_BLOB, Cursor, advance_cursor, claim_blob_name, claim_due_run, delete_claims, read_cursor,
)
from ._cron import CronExpression, parse_cron
from ._errors import InvalidScheduleError, ScheduleError
from ._exports import own_schedule, saved_at, schedule_of, scheduled_run_id, window_start
from ._timing import (
    SCHEDULE_FIELDS, Schedule, app_schedule, due, effective_schedule, instant_of, latest_due, next_run_at,
)

__all__ = [
    "CLAIMS_PREFIX", "CURSOR_BLOB", "CronExpression", "Cursor", "InvalidScheduleError", "SCHEDULE_FIELDS",
    "Schedule", "ScheduleError", "advance_cursor", "app_schedule", "claim_blob_name", "claim_due_run", "due",
    "delete_claims", "effective_schedule", "instant_of", "latest_due", "next_run_at", "own_schedule", "parse_cron", "read_cursor",
    "saved_at", "schedule_of", "scheduled_run_id", "window_start",
]
