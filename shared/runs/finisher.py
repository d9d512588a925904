"""Pure decisions about a run: what a finished step changes, what is due next, when the run ends,
and what the watchdog does with a run. No I/O: each function reads (and edits) a Run."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from ..blobstate import parse_utc
from ..settings import Settings
from .model import Approval, ApprovalStatus, Counts, Due, HeldRemoval, Plan, PlanPart, Run, RunStatus, StepKind

PREVIEW = "preview"  # shared.sync.SyncMode.PREVIEW: a run that only reports what it would do

# Outbox entries older than this look abandoned (their delivery died before sending them).
OUTBOX_GRACE = timedelta(minutes=2)


# --------------------------------------------------------------------------- steps


def record_plan(run: Run, plan: Plan, by: str, now: str) -> None:
    """The plan is saved: record it, open its first waves, and whatever follows (an empty plan ends)."""
    if run.terminal or run.planned:
        return
    run.planned_rows = plan.rows
    run.segment_names = list(plan.segment_names)
    run.wave_sizes = [len(wave) for wave in plan.waves]
    run.plan_token = plan.token
    run.mode = plan.mode
    run.sync_tags = list(plan.sync_tags)
    for wave in plan.waves:
        for planned in wave:
            if planned.counted is not None:  # nothing to send: counted without a delivery
                count(run, planned.seq, planned.counted, 0)
    if plan.mode == PREVIEW:  # every chunk counted by the planner, its report saved: nothing else to do
        run.waves_opened, run.untag_pending = len(plan.waves), []
        end(run, RunStatus.SUCCEEDED, None, now)
        return
    run.waves_opened = plan.first_waves
    if run.waves_opened:
        run.outbox.append(Due(StepKind.WAVE, 0, run.waves_opened, by, now))
    advance(run, by, now)


def record_part(run: Run, part: PlanPart, by: str, now: str) -> None:
    """A part of the first wave is saved while the rest is planned: queue its chunks now. The run is
    not planned until the whole plan is recorded (nothing past the part is opened, nothing ends)."""
    if run.terminal or run.planned or not part.chunks or part.chunks[0].seq != run.early_chunks:
        return  # recorded already (parts come in order)
    run.mode, run.sync_tags = part.mode, list(part.sync_tags)
    run.early_chunks = part.chunks[-1].seq + 1
    run.early_at = run.early_at or now
    for planned in part.chunks:
        if planned.counted is not None:
            count(run, planned.seq, planned.counted, 0)
    run.outbox.append(Due(StepKind.PART, part.index, part.index + 1, by, now))


def count(run: Run, seq: int, counts: Counts, rate_limited: int) -> None:
    """Count a chunk's result into the run, once."""
    if seq in run.chunks_done:
        return
    run.counts.add(counts)
    run.rate_limited += rate_limited
    run.chunks_done.append(seq)


def untag_done(run: Run, wave: int, untagged: int, error: str | None, held: list[HeldRemoval] | None = None) -> None:
    """The finishing step is done: leavers lost the tags the export owns, the sync state is replaced
    (or could not be: `error`, and the run ends partially succeeded). Removals over the export's
    maxRemovalPercent were `held` (not applied): the run ends partially succeeded with them."""
    if wave not in (run.untag_pending or []):
        return
    run.untag_pending = [w for w in run.untag_pending if w != wave]
    run.untagged += untagged
    run.removals_held = list(held or [])
    if error:
        run.error = error  # every row is accounted for by its chunk


def advance(run: Run, by: str, now: str) -> None:
    """Open what is due once every opened chunk is counted: the next wave, the finishing step (owned
    tags off leavers, the sync state replaced), or the run's end. Messages to send go to the run's outbox."""
    while run.planned and not run.terminal and set(run.opened_chunks) <= set(run.chunks_done):
        if run.waves_opened < len(run.wave_sizes):
            run.outbox.append(Due(StepKind.WAVE, run.waves_opened, run.waves_opened + 1, by, now))
            run.waves_opened += 1
        elif run.untag_pending is None:
            run.untag_pending = [0]  # one finishing step
            run.outbox.append(Due(StepKind.UNTAG, 0, 1, by, now))
        elif not run.untag_pending:
            partial = run.counts.rejected or run.counts.failed or run.error or run.removals_held
            end(run, RunStatus.PARTIALLY_SUCCEEDED if partial else RunStatus.SUCCEEDED, run.error, now)
        else:
            break  # waiting for the leavers of some segments to lose the tag


# A run with this few chunks left to count is in its tail, where a waiting chunk looks again within a
# second: the board reads once a second when no chunk creates batches, and the run's end waits for the
# last chunks (the board's own look-again, up to board.MAX_WAIT_SECONDS, suits the run's middle). Its
# chunks also ask the board to read by a smaller page (board.TAIL_READ_FILL), so that few of them are
# left to settle, and finish, after the last upsert.
TAIL_CHUNKS = 32
TAIL_WAIT_SECONDS = 1.0


def in_tail(run: Run) -> bool:
    """The run has opened its last wave and has at most TAIL_CHUNKS chunks left to count."""
    return run.planned and run.waves_opened == len(run.wave_sizes) and len(missing(run).chunks) <= TAIL_CHUNKS


def look_again(run: Run, delay: float) -> float:
    """How soon a waiting chunk of `run` comes back, given the board's `delay`."""
    return min(delay, TAIL_WAIT_SECONDS) if in_tail(run) else delay


def end(run: Run, status: RunStatus, error: str | None, now: str) -> None:
    """Take the run to a terminal status (a run that has ended stays as it ended)."""
    if run.terminal or not status.terminal:
        return
    run.status, run.finished_at, run.error = status, now, error
    run.outbox = []


def unprocessed_rows(run: Run) -> int:
    return max(0, run.planned_rows - run.counts.rows)


# --------------------------------------------------------------------------- approving held removals


@dataclass(frozen=True)
class Refusal:
    """Why held removals cannot be approved now; `code` is the API's problem code (409)."""

    code: str
    detail: str
    active_run: str = ""  # run_in_progress: the export's active run


def approval_refusal(run: Run) -> Refusal | None:
    """Whether the run has held removals that may be approved (the run's own facts only)."""
    if not run.removals_held:
        why = "it has not ended yet" if not run.terminal else "none was over the export's maxRemovalPercent"
        return Refusal("no_removals_held", f"run {run.run_id!r} holds no tag removals ({why})")
    approval = run.removals_approved
    if approval is not None and approval.status is not ApprovalStatus.FAILED:
        state = "are being applied" if approval.status is ApprovalStatus.APPLYING else "were applied"
        return Refusal("removals_already_approved", f"the held removals of run {run.run_id!r} were approved by "
                       f"{approval.by} at {approval.at} and {state}")
    return None


def state_refusal(run: Run, state_run_id: str | None) -> Refusal | None:
    """Held removals apply only to the sync state the run left: a later run decided its removals again."""
    if state_run_id == run.run_id:
        return None
    since = f"run {state_run_id!r}" if state_run_id else "the export's deletion or a reset"
    return Refusal("sync_state_replaced", f"the export's sync state was replaced by {since} after run "
                   f"{run.run_id!r}; that run decided its tag removals again, approve those instead")


def active_refusal(run: Run, active_run_id: str) -> Refusal:
    return Refusal("run_in_progress", f"export {run.export_id!r} has run {active_run_id!r} in progress; approve "
                   "the held removals once it has ended (if it replaces the sync state, it decides the removals again)",
                   active_run_id)


def approve(run: Run, by: str, now: str) -> Refusal | None:
    """Record an approval of the run's held removals (applying); or why not."""
    refusal = approval_refusal(run)
    if refusal is None:
        run.removals_approved = Approval(by, now)
    return refusal


def withdraw(run: Run, approval: Approval, previous: Approval | None) -> None:
    """Undo `approval` (refused after it was recorded: the export is busy or its state was replaced)."""
    if run.removals_approved == approval:
        run.removals_approved = previous


def approval_done(run: Run, removed: int, error: str | None, now: str) -> None:
    """Applying the approved removals ended: applied (the state replaced without those tags), or failed."""
    approval = run.removals_approved
    if approval is None or approval.status is not ApprovalStatus.APPLYING:
        return
    status = ApprovalStatus.FAILED if error else ApprovalStatus.APPLIED
    run.removals_approved = Approval(approval.by, approval.at, status, removed, now, error)


def approval_verdict(run: Run, now: datetime, last_activity: datetime, policy: "WatchPolicy") -> "Verdict":
    """The watchdog on an approval being applied: give up after RUN_MAX_HOURS from the approval, send its
    step again after RUN_STALL_MINUTES without progress."""
    if not run.applying_removals:
        return Verdict.NONE
    if now - parse_utc(run.removals_approved.at) >= policy.max_run:
        return Verdict.FAIL
    if now - last_activity >= policy.stall:
        return Verdict.REDRIVE
    return Verdict.NONE


# --------------------------------------------------------------------------- the watchdog


class Verdict(str, Enum):
    NONE = "none"
    FLUSH = "flush"  # send outbox entries their delivery left behind
    REDRIVE = "redrive"  # no progress for RUN_STALL_MINUTES: send again what the state says is missing
    FAIL = "fail"  # running longer than RUN_MAX_HOURS


@dataclass(frozen=True)
class WatchPolicy:
    stall: timedelta
    max_run: timedelta
    outbox_grace: timedelta = OUTBOX_GRACE

    @classmethod
    def of(cls, settings: Settings) -> "WatchPolicy":
        return cls(timedelta(minutes=settings.run_stall_minutes), timedelta(hours=settings.run_max_hours))


def judge(run: Run, now: datetime, last_activity: datetime, policy: WatchPolicy) -> Verdict:
    """What the watchdog does with `run` at `now`, given when anything of it last moved."""
    if run.terminal:
        return Verdict.NONE
    if now - parse_utc(run.started_at) >= policy.max_run:
        return Verdict.FAIL
    if any(now - parse_utc(due.at) >= policy.outbox_grace for due in run.outbox):
        return Verdict.FLUSH
    if now - last_activity >= policy.stall:
        return Verdict.REDRIVE
    return Verdict.NONE


@dataclass(frozen=True)
class Missing:
    """What a stalled run's state says should be in the queue."""

    plan: bool = False
    chunks: tuple[int, ...] = ()  # opened, not counted
    untag_waves: tuple[int, ...] = ()

    @property
    def nothing(self) -> bool:
        return not (self.plan or self.chunks or self.untag_waves)


def missing(run: Run) -> Missing:
    if run.terminal:
        return Missing()
    done = set(run.chunks_done)
    chunks = tuple(seq for seq in run.opened_chunks if seq not in done)
    if not run.planned:  # its chunks are those of plan parts queued before the plan was whole
        return Missing(plan=True, chunks=chunks)
    return Missing(chunks=chunks, untag_waves=tuple(run.untag_pending or ()))


def overdue_error(run: Run, max_hours: int) -> str:
    return (f"the run did not finish within RUN_MAX_HOURS ({max_hours} h) and was stopped; "
            f"{unprocessed_rows(run)} planned rows were not processed")
