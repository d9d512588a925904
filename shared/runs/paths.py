"""Every blob name of run state, in one place.

Layout in the state container (ETag concurrency, no database):

  runs/<runId>/run.json                    the Run document (status, counts, chunks counted, outbox)
  runs/<runId>/plan.json                   the plan: its token and every chunk, by wave; written once
  runs/<runId>/parts/<index>.json          first-wave chunks queued while the rest was planned; each written once
  runs/<runId>/notes/<token>/<seq>.json    rows the planner decided on: duplicate rows, contact limit, tag-only
  runs/<runId>/members/<token>/<wave>.bin  the email keys of a segment, for removing its tag from leavers
  runs/<runId>/preview/<token>.json        a preview run's report: what an incremental run would do
  runs/<runId>/progress/<step>.json        a chunk's (or untag wave's) claim and what it has done in
                                           Omnisend so far; also the last error of a step, and planning's
  runs/<runId>/results/<seq>.json          a chunk's final counts, written once (If-None-Match: *);
                                           its blob metadata names its rejects file
  runs/<runId>/rejects/<seq>-<token>.csv   the rejected and failed rows of the result with that token
  runs/<runId>/changes/<seq>-<token>.bin   what the chunk verified in Omnisend (shared.sync change log),
                                           for the sync state; the result names its token
  runs/<runId>/held/<index>.bin            the email keys of a tag's removals the gate held (the index-th of
                                           the run's removalsHeld), for POST /runs/<runId>/approve-removals;
                                           applying an approval is the step `approve` (progress/approve.json)
  sync/<exportId>/state.bin                the export's sync state (shared.sync.SyncStateStore)
  runs/<runId>/unsent-before-<wave>.json   emails earlier waves did not send (for a wave's tag-only rows)
  run-index/<exportId>/<newest-first key>  one empty marker per run, for listing
  active-runs/<exportId>.json              the export's lock: its run in progress, if any. The lock is
                                           the index of active runs the watchdog reads.
  batch-boards/<connectionId>.json         the connection's batch board: batches chunks wait for, outcomes
                                           read for them from GET /batches, the reader's lease (board.py)

Planner outputs carry the plan's token, so two planners of one run never mix their files: the plan
written first (create-only) names the token every later step reads.
"""
from __future__ import annotations

import re
import time

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
ACTIVE_PREFIX = "active-runs/"
_REJECTS = re.compile(r"/rejects/(\d+)-([0-9a-f]+)\.csv$")


def valid_run_id(run_id: str) -> bool:
    return bool(RUN_ID.match(run_id))


def run_doc(run_id: str) -> str:
    return f"runs/{run_id}/run.json"


def plan(run_id: str) -> str:
    return f"runs/{run_id}/plan.json"


def part(run_id: str, index: int) -> str:
    return f"runs/{run_id}/parts/{index}.json"


def notes(run_id: str, token: str, seq: int) -> str:
    return f"runs/{run_id}/notes/{token}/{seq}.json"


def members(run_id: str, token: str, wave: int) -> str:
    return f"runs/{run_id}/members/{token}/{wave}.bin"


def preview(run_id: str, token: str) -> str:
    return f"runs/{run_id}/preview/{token}.json"


def progress(run_id: str, step: int | str) -> str:
    """A chunk's progress (`step` = its seq), an untag wave's (`untag-<wave>`) or planning's (`plan`)."""
    return f"runs/{run_id}/progress/{step}.json"


def progress_prefix(run_id: str) -> str:
    return f"runs/{run_id}/progress/"


def untag_step(wave: int) -> str:
    return f"untag-{wave}"


APPROVE_STEP = "approve"


def held(run_id: str, index: int) -> str:
    return f"runs/{run_id}/held/{index}.bin"


def result(run_id: str, seq: int) -> str:
    return f"runs/{run_id}/results/{seq}.json"


def results_prefix(run_id: str) -> str:
    return f"runs/{run_id}/results/"


def seq_of_result(name: str) -> int:
    return int(name.rsplit("/", 1)[1].removesuffix(".json"))


def rejects(run_id: str, seq: int, token: str) -> str:
    return f"runs/{run_id}/rejects/{seq:06d}-{token}.csv"


def rejects_prefix(run_id: str) -> str:
    return f"runs/{run_id}/rejects/"


def parse_rejects(name: str) -> tuple[int, str] | None:
    """(seq, token) of a rejects blob name."""
    found = _REJECTS.search(name)
    return (int(found.group(1)), found.group(2)) if found else None


def changes(run_id: str, seq: int, token: str) -> str:
    return f"runs/{run_id}/changes/{seq:06d}-{token}.bin"


def unsent_before(run_id: str, wave: int) -> str:
    return f"runs/{run_id}/unsent-before-{wave}.json"


def index_prefix(export_id: str) -> str:
    return f"run-index/{export_id}/"


def index_entry(export_id: str, run_id: str) -> str:
    return f"{index_prefix(export_id)}{(2**63 - time.time_ns()):020d}-{run_id}"


def run_of_index_entry(name: str) -> str:
    return name.rsplit("/", 1)[1].split("-", 1)[1]


def active(export_id: str) -> str:
    return f"{ACTIVE_PREFIX}{export_id}.json"


def batch_board(connection_id: str) -> str:
    return f"batch-boards/{connection_id}.json"
