"""The schedule package's errors: one root, subclasses by what went wrong."""
from __future__ import annotations

from ..problems import FieldError


class ScheduleError(ValueError):
    """Root of every error of shared.schedule."""


class InvalidScheduleError(ScheduleError):
    """A schedule that cannot be used: each problem names its JSON path (e.g. `schedule.cron`) and
    what is wrong there (which part of the expression, which zone)."""

    def __init__(self, problems: list[FieldError]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))
