"""Run state in blob storage and the run queue: the run engine's only I/O with storage.

Every read-modify-write of a run goes through `update_run` (ETag loop); steps that must run in one
delivery at a time hold a `Claim`. All calls go through `shared.blobstate`, so a test probe sees them.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from azure.core.exceptions import ResourceNotFoundError

from .. import blobstate, storage
from ..settings import Settings
from . import paths
from .errors import Busy, ClaimLost, RunNotFoundError
from .messages import Message, to_json
from .model import Plan, PlanPart, Run

log = logging.getLogger(__name__)

MAX_DELAY_SECONDS = 600  # the queue's longest visibility delay we use: a deferral waits at most this long
CLAIM_SECONDS = 120.0


@dataclass(frozen=True)
class Updated:
    run: Run
    changed: bool  # the change was saved
    ended: bool  # the saved change took the run to a terminal state


class RunStore:
    """Blob access for run state and the run queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.container = storage.container(settings, settings.state_container)
        self._queue = None

    # -- blobs ----------------------------------------------------------------------------------

    def ensure(self) -> None:
        blobstate.ensure_container(self.container)

    def read(self, name: str) -> blobstate.Stored | None:
        return blobstate.read(self.container, name)

    def read_json(self, name: str) -> tuple[Any, str] | None:
        return blobstate.read_json(self.container, name)

    def stream(self, name: str) -> Iterator[bytes] | None:
        return blobstate.stream(self.container, name)

    def write(self, name: str, data: bytes | str, **conditions) -> str:
        return blobstate.write(self.container, name, data, **conditions)

    def write_json(self, name: str, value: Any, **conditions) -> str:
        return blobstate.write_json(self.container, name, value, **conditions)

    def delete(self, name: str, *, if_match: str | None = None) -> bool:
        return blobstate.delete(self.container, name, if_match=if_match)

    def list(self, prefix: str, *, metadata: bool = False) -> list[blobstate.Listed]:
        return blobstate.list_blobs(self.container, prefix, metadata=metadata)

    # -- runs -----------------------------------------------------------------------------------

    def load_run(self, run_id: str) -> tuple[Run, str]:
        found = self.read_json(paths.run_doc(run_id)) if paths.valid_run_id(run_id) else None
        if found is None:
            raise RunNotFoundError(run_id)
        return Run.from_dict(found[0]), found[1]

    def get_run(self, run_id: str) -> Run:
        return self.load_run(run_id)[0]

    def create_run(self, run: Run) -> None:
        """Record a new run (create-only: a run id is never reused)."""
        run.updated_at = blobstate.utc_now()
        self.write_json(paths.run_doc(run.run_id), run.to_dict(), create_only=True)

    def update_run(self, run_id: str, change: Callable[[Run], None]) -> Updated:
        """Apply `change` (which edits the run in place) and save it, again on a fresh read until the
        write wins. A change that leaves the run as it was writes nothing."""
        while True:
            run, etag = self.load_run(run_id)
            before = copy.deepcopy(run)
            change(run)
            if run == before:
                return Updated(run, False, False)
            run.updated_at = blobstate.utc_now()
            try:
                self.write_json(paths.run_doc(run_id), run.to_dict(), if_match=etag)
            except blobstate.ConflictError:
                continue
            return Updated(run, True, run.terminal and not before.terminal)

    def load_plan(self, run_id: str) -> Plan | None:
        found = self.read_json(paths.plan(run_id))
        return None if found is None else Plan.from_dict(found[0])

    def load_parts(self, run_id: str, start: int = 0, stop: int | None = None) -> list[PlanPart]:
        """The plan parts saved from `start` on (to `stop`, else until one is missing), in order."""
        parts = []
        index = start
        while stop is None or index < stop:
            found = self.read_json(paths.part(run_id, index))
            if found is None:
                if stop is not None:
                    raise LookupError(f"run {run_id}: plan part {index} is missing")
                break
            parts.append(PlanPart.from_dict(found[0]))
            index += 1
        return parts

    # -- errors of steps, for the poison handler -------------------------------------------------

    def remember_error(self, run_id: str, step: str, error: BaseException, owner: str) -> None:
        """Keep the error of a failed attempt in the step's progress blob; the attempt lets go of the
        step if it held it (the next attempt, or another delivery, takes it at once)."""
        name = paths.progress(run_id, step)
        text = f"{type(error).__name__}: {error}"[:500]
        for _ in range(5):
            found = self.read_json(name)
            document, etag = found if found else ({}, None)
            document["lastError"] = text
            if document.get("owner") == owner:
                document["owner"] = None
            try:
                self.write_json(name, document, if_match=etag, create_only=etag is None)
                return
            except blobstate.ConflictError:
                continue

    def last_error(self, run_id: str, step: str) -> str:
        found = self.read_json(paths.progress(run_id, step))
        return (found[0].get("lastError") if found else "") or "see the function logs"

    # -- the queue ------------------------------------------------------------------------------

    def send(self, messages: Iterable[Message], delay: float = 0) -> int:
        """Queue messages (after `delay` seconds, at most MAX_DELAY_SECONDS); returns how many."""
        visibility = int(min(MAX_DELAY_SECONDS, max(0, delay)))
        return sum(self._put(message, visibility) for message in messages)

    def send_paced(self, outgoing: Iterable[tuple[Message, float]]) -> int:
        """Queue each message to become visible its seconds after this call began (the caller bounds
        them; the queue counts whole seconds); returns how many."""
        began = time.monotonic()
        return sum(self._put(message, int(max(0.0, after - (time.monotonic() - began)))) for message, after in outgoing)

    def _put(self, message: Message, visibility: int) -> int:
        if self._queue is None:
            self._queue = storage.queue(self.settings, self.settings.export_queue)
        data = to_json(message)
        with blobstate.io_call("send", self.settings.export_queue):
            try:
                self._queue.send_message(data, visibility_timeout=visibility or None)
            except ResourceNotFoundError:
                self._queue.create_queue()
                self._queue.send_message(data, visibility_timeout=visibility or None)
        return 1


class Claim:
    """One delivery at a time on a step (a chunk, an untag wave). The owner and an expiry live in the
    step's progress blob beside its state; every save is conditional on the last one, and renews the
    expiry. A claim held by another owner and not expired is `Busy`; a save that finds the blob
    changed means another delivery took over (`ClaimLost`), so this one stops before sending more."""

    def __init__(self, store: RunStore, run_id: str, step: str, owner: str,
                 seconds: float = CLAIM_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.store, self.name, self.step, self.owner = store, paths.progress(run_id, step), step, owner
        self.seconds, self.clock = seconds, clock
        self._document: dict[str, Any] = {}
        self._etag: str | None = None

    def acquire(self) -> dict:
        """Take the step; returns its saved state ({} the first time). Busy when someone else holds it."""
        found = self.store.read_json(self.name)
        document, etag = found if found else ({}, None)
        holder, until = document.get("owner"), float(document.get("until") or 0)
        now = self.clock()
        if holder and holder != self.owner and until > now:
            raise Busy(f"step {self.step}", min(until - now, 60.0) + 1)
        document.update(owner=self.owner, until=now + self.seconds)
        try:
            self._etag = self.store.write_json(self.name, document, if_match=etag, create_only=etag is None)
        except blobstate.ConflictError:
            raise Busy(f"step {self.step}", 1.0) from None
        self._document = document
        return dict(document.get("state") or {})

    def save(self, state: dict) -> None:
        self._document.update(state=state, until=self.clock() + self.seconds)
        try:
            self._etag = self.store.write_json(self.name, self._document, if_match=self._etag)
        except blobstate.ConflictError:
            raise ClaimLost(f"step {self.step} was taken over by another delivery") from None

    def keep_alive(self) -> None:
        """Renew the claim once half of it is used."""
        if float(self._document.get("until") or 0) - self.clock() < self.seconds / 2:
            self.save(self._document.get("state") or {})
