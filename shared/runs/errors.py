"""The run engine's errors: one root, subclasses by what went wrong."""
from __future__ import annotations


class RunError(Exception):
    """Root of the run engine's errors."""


class RunNotFoundError(RunError, LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} does not exist")
        self.run_id = run_id


class RunInProgressError(RunError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} of this export is still in progress")
        self.run_id = run_id


class RunFailure(RunError):
    """Ends the whole run as failed with this message (bad key, missing segment, unreadable input)."""


class MessageError(RunError, ValueError):
    """A queue message that is not one of the run engine's; names what is wrong with it."""


class Deferred(RunError):
    """The work must wait (rate limit, slow batches): send its message again after `delay` seconds."""

    def __init__(self, delay: float, reason: str, *, rate_limited: bool = False) -> None:
        super().__init__(f"deferred {delay:.1f} s: {reason}")
        self.delay = delay
        self.reason = reason
        self.rate_limited = rate_limited  # an Omnisend 429 or a spent budget, counted on the run


class Waiting(RunError):
    """A chunk's batches are not settled yet: it ends, and its message comes back after `delay` seconds
    (not a deferral: waiting is bounded by its own time limit, see messages.may_wait)."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(f"waiting {delay:.0f} s: {reason}")
        self.delay = delay
        self.reason = reason


class Busy(RunError):
    """Another delivery holds this step (a duplicate message): try again after `delay` seconds."""

    def __init__(self, step: str, delay: float) -> None:
        super().__init__(f"{step} is being worked on by another delivery; retry in {delay:.0f} s")
        self.delay = delay


class Held(RunError):
    """A chunk yet to create its batches waits for its run's segment tags to catch up: its
    message is sent again unchanged after `delay` seconds (board.held_for_tags)."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(f"held {delay:.0f} s: {reason}")
        self.delay = delay


class ClaimLost(RunError):
    """Another delivery took this step over (this one was too slow): stop without recording anything."""


class Stopped(RunError):
    """The run was cancelled or failed meanwhile: the step must not send anything more."""
