"""Faults at the run engine's I/O layer: a probe (shared.blobstate.Probe) that records every storage
and queue call as a *site* (operation and blob name with ids and numbers masked), and can fail one
chosen call once, before it happens (an error) or right after it (the process dies)."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_MASKS = (
    (re.compile(r"\d{8}T\d{6}-[0-9a-f]{8}"), "<run>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"[0-9a-f]{12,}"), "<hex>"),
    (re.compile(r"\d+"), "<n>"),
)


class ProcessDeath(BaseException):
    """The worker process ended right after a call: no except-handler of the app runs."""


class InjectedFault(ConnectionError):
    """A storage or queue call that failed."""


def site(op: str, target: str) -> str:
    """`write runs/<run>/progress/<n>.json`, `send <queue>`: what a call is, whatever run it serves."""
    name = target.split("/", 1)[1] if "/" in target else "<queue>" if op == "send" else "<container>"
    for pattern, mask in _MASKS:
        name = pattern.sub(mask, name)
    return f"{op} {name}"


@dataclass
class FaultPlan:
    """Records sites; with `target` set, fails its `occurrence`-th call once in `mode` ("fail": an
    error instead of the call, "die": the call happens, then the process dies)."""

    target: str | None = None
    occurrence: int = 1
    mode: str = "fail"
    armed: bool = True
    context: str = ""  # set by the caller, e.g. the kind of message being handled: part of each site
    seen: Counter = field(default_factory=Counter)
    calls: list[str] = field(default_factory=list)
    fired: str | None = None
    _pending_death: bool = False

    def before(self, op: str, target: str) -> None:
        self._pending_death = False  # a targeted call that raised (a lost condition) dies no death
        where = f"{self.context}: {site(op, target)}" if self.context else site(op, target)
        self.calls.append(where)
        self.seen[where] += 1
        if self.armed and self.target == where and self.seen[where] == self.occurrence:
            self.armed = False
            self.fired = where
            if self.mode == "fail":
                raise InjectedFault(f"injected failure at {where}")
            self._pending_death = True

    def after(self, op: str, target: str) -> None:
        if self._pending_death:
            self._pending_death = False
            raise ProcessDeath(f"process died after {site(op, target)}")
