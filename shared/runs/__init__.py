"""The one place that owns run state: runs, their chunks and their outcomes, kept in blob storage.

A trigger records a run (`start_run`, `start_scheduled_runs`, `start_runs_for_upload`) and queues
its plan; `process_message` plans, delivers chunks and removes tags from leavers; messages that
failed every attempt go to `fail_poisoned_message`; `watch_runs` (a timer) makes sure every run
ends. The modules, each one job:

  model      Run, Counts, RunStatus, ExportSnapshot, the saved Plan
  paths      every blob name of run state (the layout)
  store      blob and queue I/O, run updates (ETag loop), step claims
  messages   Plan/Chunk/Untag messages, their JSON, the deferral limit
  lifecycle  start, read, list, cancel; schedule and upload triggers; the rejects CSV
  lock       the export lock, taken before a run is visible; the index of active runs
  ending     the one place a run reaches a terminal state (`run_ended`)
  finisher   pure decisions: what a step changes, what is due next, the watchdog's verdicts
  outbox     decided steps to queue messages, sent after they are saved
  stagger    when each chunk of an opened wave becomes visible: at the budget's pace (pure)
  planner    segments into chunks, one decision per row (pure `Deduplicator`)
  worker     one chunk: map, deliver (delivery.ChunkDelivery), record its result once
  results    a chunk's result and rejects file; the run's rejects CSV, streamed
  untag      leavers of a segment lose its tag (or keep it: removals over maxRemovalPercent are held)
  approval   held removals approved: applied by a queued step under the export lock
  deletion   an export deleted: what is kept for it goes; with its tags first (a `delete` run)
  handlers   the queue and poison-queue handlers
  watchdog   stalled runs re-driven, overdue runs failed
  clients    a run's connection and its Omnisend client (shared rate budget)
"""
from .approval import ApprovalRefused, approve_removals
from .deletion import delete_export, deleting_run, start_tag_removal
from .errors import RunError, RunInProgressError, RunNotFoundError
from .handlers import fail_poisoned_message, process_message
from .lifecycle import (
    cancel_export_runs,
    cancel_run,
    get_run,
    iter_rejects_csv,
    list_runs,
    preview_report,
    rejects_csv,
    start_run,
    start_runs_for_upload,
    start_scheduled_runs,
)
from .model import Counts, ExportSnapshot, Run, RunStatus, Trigger
from .watchdog import WatchReport, watch_runs

__all__ = [
    "ApprovalRefused",
    "Counts",
    "ExportSnapshot",
    "Run",
    "RunError",
    "RunInProgressError",
    "RunNotFoundError",
    "RunStatus",
    "Trigger",
    "WatchReport",
    "approve_removals",
    "cancel_export_runs",
    "cancel_run",
    "delete_export",
    "deleting_run",
    "fail_poisoned_message",
    "get_run",
    "iter_rejects_csv",
    "list_runs",
    "preview_report",
    "process_message",
    "rejects_csv",
    "start_run",
    "start_runs_for_upload",
    "start_scheduled_runs",
    "start_tag_removal",
    "watch_runs",
]
