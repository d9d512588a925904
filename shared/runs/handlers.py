"""The two queue handlers: every run message, and messages that failed every delivery attempt."""
from __future__ import annotations

import logging
import secrets

from ..settings import Settings
from . import approval, ending, planner, untag, worker
from .errors import Busy, ClaimLost, Deferred, Held, MessageError, RunFailure, RunNotFoundError, Waiting
from .messages import ApproveMessage, ChunkMessage, Message, PlanMessage, UntagMessage, deferred, parse, waiting
from .store import RunStore

log = logging.getLogger(__name__)


def _identity(delivery: str | None) -> str:
    """Who is working: the queue message's id (a redelivery has the same), else a fresh one."""
    return delivery or f"local-{secrets.token_hex(8)}"


def process_message(settings: Settings, body: bytes, delivery: str | None = None) -> None:
    """One queue message: plan a run, deliver one chunk, or remove a segment's tag from leavers.
    Work that must wait is sent again with a delay, one attempt further."""
    message = parse(body)
    me = _identity(delivery)
    store = RunStore(settings)
    try:
        _route(settings, store, message, me)
    except Deferred as wait:
        store.send([deferred(message, owner=getattr(message, "owner", None) or me)], delay=wait.delay)
        if wait.rate_limited and not isinstance(message, ChunkMessage):  # chunks count theirs in their result
            store.update_run(message.run_id, _count_rate_limited)
        log.info("run %s %s deferred %.0f s (attempt %d): %s", message.run_id, message.step, wait.delay,
                 message.attempt + 1, wait.reason)
    except Waiting as wait:  # only chunks wait: their batches are settled by the connection's board
        store.send([waiting(message, owner=message.owner or me)], delay=wait.delay)
        log.debug("run %s chunk %s waits %.0f s: %s", message.run_id, message.step, wait.delay, wait.reason)
    except Held as held:  # not a deferral: nothing was tried, and it is let in first when it is back
        store.send([message], delay=held.delay)
        log.debug("run %s chunk %s: %s", message.run_id, message.step, held)
    except Busy as busy:
        store.send([message], delay=busy.delay)  # a duplicate: look again once the other may be done
        log.info("run %s %s: %s", message.run_id, message.step, busy)
    except ClaimLost as lost:
        log.warning("run %s %s: %s", message.run_id, message.step, lost)
    except RunFailure as failure:
        if isinstance(message, ApproveMessage):  # the run has ended: only its approval fails
            approval.record(store, store.get_run(message.run_id), 0, str(failure))
        else:
            ending.fail_run(store, message.run_id, str(failure))
    except RunNotFoundError:
        log.warning("run %s of a queue message does not exist; the message is dropped", message.run_id)
    except Exception as error:
        try:
            store.remember_error(message.run_id, message.step, error, getattr(message, "owner", None) or me)
        except Exception:  # noqa: BLE001 - the original error is what the host must see
            log.exception("run %s %s: the error could not be kept", message.run_id, message.step)
        raise


def _route(settings: Settings, store: RunStore, message: Message, me: str) -> None:
    if isinstance(message, PlanMessage):
        planner.plan(settings, store, message, me)
    elif isinstance(message, UntagMessage):
        untag.untag_leavers(settings, store, message, me)
    elif isinstance(message, ApproveMessage):
        approval.apply_approved(settings, store, message, me)
    else:
        worker.process_chunk(settings, store, message, me)


def _count_rate_limited(run) -> None:
    run.rate_limited += 1


def fail_poisoned_message(settings: Settings, body: bytes, delivery: str | None = None) -> None:
    """A message that failed every delivery attempt: what it holds fails, so the run ends."""
    try:
        message = parse(body)
    except MessageError as error:
        log.error("poison queue: %s; dropped", error)
        return
    me = _identity(delivery)
    store = RunStore(settings)
    try:
        last_error = store.last_error(message.run_id, message.step)
        if isinstance(message, PlanMessage):
            ending.fail_run(store, message.run_id, f"planning failed on every attempt: {last_error}")
        elif isinstance(message, UntagMessage):
            untag.record(store, message.run_id, message.wave, 0,
                         f"removing the tag from leavers failed: {last_error}", me)
        elif isinstance(message, ApproveMessage):
            approval.record(store, store.get_run(message.run_id), 0,
                            f"applying the approved removals failed on every attempt: {last_error}")
        else:
            worker.fail_chunk(store, message, me, f"gave up after repeated errors: {last_error}")
    except RunNotFoundError:
        log.warning("run %s of a poisoned message does not exist; the message is dropped", message.run_id)

