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


# The crash tests' stand-ins for a fresh deployment: budgets no run reaches, batches that finish at once.
FAST = 1_000_000


def fast_services(azurite, secrets_dir):
    """(settings, sandbox) on containers and a queue of their own; the caller stops the sandbox."""
    import dataclasses
    import uuid

    from shared.settings import Settings
    from tools.omnisend_sandbox import OmnisendSandbox

    suffix = uuid.uuid4().hex[:10]
    settings = Settings.from_env({
        "AzureWebJobsStorage": azurite.connection_string, "SEGMENTS_CONTAINER": f"segments-{suffix}",
        "STATE_CONTAINER": f"state-{suffix}", "EXPORT_QUEUE": f"chunks-{suffix}",
        "LOCAL_SECRETS_DIR": str(secrets_dir),
    })
    sandbox = OmnisendSandbox(requests_per_minute=FAST, tag_requests_per_minute=FAST,
                              batch_step_seconds=0.0005).start()
    return dataclasses.replace(settings, omnisend_api_url=sandbox.url, chunk_rows=100), sandbox


def stored_export(settings, api_key: str, name: str, segments: list[str]):
    """A stored export on a new connection with the FAST budgets, its key in the local secret store."""
    from shared import documents
    from shared.keystore import secret_name_for, secret_store
    from tools.sample_export import DEFAULT_MAPPING

    now, connection_id = documents.utc_now(), documents.new_id()
    connection = documents.Connection(
        id=connection_id, display_name=name, secret_name=secret_name_for(connection_id), export_user="a",
        consent_at=now, created_at=now, created_by="a", requests_per_minute=FAST, tag_requests_per_minute=FAST)
    secret_store(settings).set(connection.secret_name, api_key)
    store = documents.DocumentStore(settings)
    store.put_connection(connection)
    export = documents.Export(
        id=documents.new_id(), display_name=name, connection_id=connection_id, segments=list(segments),
        mapping=dict(DEFAULT_MAPPING), created_at=now, updated_at=now, created_by="a", run_on=[])
    store.put_export(export)
    return export
