"""Run telemetry: one structured event per finished export run and one per failed chunk.

Events are typed (`RunFinished`, `ChunkFailed`) and leave through one door, `emit(event)`: a log record
on the `omnisend_export.events` logger that carries the event's name and its dimensions as record
attributes. Locally that is one readable log line. In Azure, `configure()` attaches the Azure Monitor
OpenTelemetry distro (`azure-monitor-opentelemetry`, `configure_azure_monitor()`) to that logger only:
Microsoft's guide "Use OpenTelemetry with Azure Functions" names it for Python apps, and the host's own
logger would drop the attributes (it forwards the message text only). The record's
`microsoft.custom_event.name` attribute makes the exporter send it as an Application Insights custom
event: `customEvents` / `AppEvents` rows named `ExportRunFinished` and `ExportChunkFailed`, with the
dimensions in `customDimensions` / `Properties` (as strings). Ingestion authenticates with the app's
managed identity (the exporter reads APPLICATIONINSIGHTS_AUTHENTICATION_STRING; local auth is off).
Only this logger is exported: no traces, metrics or auto-instrumentation, so the Omnisend hot path pays
nothing and Application Insights bills for the events alone.

Events carry identifiers and counts; the one free-text field, a failed chunk's reason, has e-mail
addresses and key-like tokens replaced before it is stored in the event.

The run engine calls `emit(RunFinished.from_run(run))` when a run reaches a terminal
state and `emit(ChunkFailed(...))` when a chunk's rows are all counted as failed (`run_finished(...)`
and `chunk_failed(...)` do the same from keyword fields).
"""
from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, Union

from .settings import Settings

__all__ = [
    "CHUNK_FAILED",
    "CHUNK_FAILED_DIMENSIONS",
    "EVENT_LOGGER",
    "RUN_FINISHED",
    "RUN_FINISHED_DIMENSIONS",
    "ChunkFailed",
    "Event",
    "RunFinished",
    "chunk_failed",
    "configure",
    "emit",
    "quiet_sdk_logging",
    "run_finished",
    "scrub",
]

EVENT_LOGGER = "omnisend_export.events"
# The log record attribute the Azure Monitor exporter turns into a custom event of that name.
CUSTOM_EVENT_ATTRIBUTE = "microsoft.custom_event.name"

RUN_FINISHED = "ExportRunFinished"
RUN_FINISHED_DIMENSIONS = (
    "exportId", "runId", "trigger", "status", "rows", "sent", "rejected", "failed", "untagged",
    "durationSeconds", "rateLimited",
)
CHUNK_FAILED = "ExportChunkFailed"
CHUNK_FAILED_DIMENSIONS = ("exportId", "runId", "chunkSeq", "rows", "reason")

MAX_REASON_CHARS = 500
# Every OpenTelemetry instrumentation the distro knows, all off: only the event logger is exported.
_INSTRUMENTATIONS = ("azure_sdk", "django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3", "httpx")

log = logging.getLogger(EVENT_LOGGER)
log.setLevel(logging.INFO)  # events are always worth a record, whatever the root logger's level
_internal = logging.getLogger(__name__)


# --------------------------------------------------------------------------- what leaves the app

_EMAIL = re.compile(r"[^\s@<>\"'(),;:]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# API keys and tokens (an Omnisend key is "<24 hex>-<more>"): long runs of key characters with a
# digit. Run IDs are shorter; UUIDs (batch IDs) are kept.
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])(?=[A-Za-z0-9+/=_-]*\d)[A-Za-z0-9+/=_-]{32,}(?![A-Za-z0-9+/=_-])")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _redact(match: re.Match) -> str:
    return match[0] if _UUID.fullmatch(match[0]) else "<redacted>"


def scrub(text: str) -> str:
    """`text` with e-mail addresses (masked ones too) and key-like tokens replaced, at most 500 characters."""
    cleaned = _TOKEN.sub(_redact, _EMAIL.sub("<email>", str(text)))
    return cleaned if len(cleaned) <= MAX_REASON_CHARS else cleaned[: MAX_REASON_CHARS - 1] + "…"


def _check_text(event: str, name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{event}.{name} must be a non-empty string, got {value!r}")


def _check_count(event: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{event}.{name} must be a whole number >= 0, got {value!r}")


@dataclass(frozen=True)
class RunFinished:
    """A run reached a terminal state (succeeded, partiallySucceeded, failed, cancelled, skipped)."""

    export_id: str
    run_id: str
    trigger: str  # schedule, manual, upload
    status: str
    rows: int
    sent: int
    rejected: int
    failed: int
    untagged: int
    duration_seconds: float
    rate_limited: int = 0  # Omnisend 429 answers the run's requests drew

    name: ClassVar[str] = RUN_FINISHED

    def __post_init__(self) -> None:
        for field in ("export_id", "run_id", "trigger", "status"):
            _check_text("RunFinished", field, getattr(self, field))
        for field in ("rows", "sent", "rejected", "failed", "untagged", "rate_limited"):
            _check_count("RunFinished", field, getattr(self, field))
        seconds = self.duration_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
            raise ValueError(f"RunFinished.duration_seconds must be a number of seconds >= 0, got {seconds!r}")

    @property
    def level(self) -> int:
        return logging.WARNING if self.status == "failed" else logging.INFO

    def dimensions(self) -> dict[str, str | int | float]:
        return {
            "exportId": self.export_id,
            "runId": self.run_id,
            "trigger": self.trigger,
            "status": self.status,
            "rows": self.rows,
            "sent": self.sent,
            "rejected": self.rejected,
            "failed": self.failed,
            "untagged": self.untagged,
            "durationSeconds": round(float(self.duration_seconds), 3),
            "rateLimited": self.rate_limited,
        }

    def message(self) -> str:
        return (f"{self.name} export={self.export_id} run={self.run_id} trigger={self.trigger} "
                f"status={self.status} rows={self.rows} sent={self.sent} rejected={self.rejected} "
                f"failed={self.failed} untagged={self.untagged} duration={self.duration_seconds:.0f}s "
                f"429s={self.rate_limited}")

    @classmethod
    def from_run(cls, run: Any, *, now: datetime | None = None) -> "RunFinished":
        """The event of a finished run as the run engine keeps it (`shared.runs.Run`: run_id, export_id,
        trigger, status, counts.rows/sent/rejected/failed, untagged, rate_limited, started_at, finished_at)."""
        started = _parse_time(run.started_at)
        finished = _parse_time(run.finished_at) if run.finished_at else (now or datetime.now(timezone.utc))
        return cls(
            export_id=run.export_id,
            run_id=run.run_id,
            trigger=str(getattr(run.trigger, "value", run.trigger)),  # the engine's str enums, as their values
            status=str(getattr(run.status, "value", run.status)),
            rows=run.counts.rows,
            sent=run.counts.sent,
            rejected=run.counts.rejected,
            failed=run.counts.failed,
            untagged=run.untagged,
            duration_seconds=max(0.0, (finished - started).total_seconds()),
            rate_limited=run.rate_limited,
        )


@dataclass(frozen=True)
class ChunkFailed:
    """Every row of a chunk was counted as failed (it failed every delivery attempt)."""

    export_id: str
    run_id: str
    chunk_seq: int
    rows: int
    reason: str

    name: ClassVar[str] = CHUNK_FAILED
    level: ClassVar[int] = logging.WARNING

    def __post_init__(self) -> None:
        for field in ("export_id", "run_id"):
            _check_text("ChunkFailed", field, getattr(self, field))
        for field in ("chunk_seq", "rows"):
            _check_count("ChunkFailed", field, getattr(self, field))
        # The reason is free text (often an error message): never let an address or a key into it.
        object.__setattr__(self, "reason", scrub(self.reason or "no reason recorded"))

    def dimensions(self) -> dict[str, str | int | float]:
        return {
            "exportId": self.export_id,
            "runId": self.run_id,
            "chunkSeq": self.chunk_seq,
            "rows": self.rows,
            "reason": self.reason,
        }

    def message(self) -> str:
        return (f"{self.name} export={self.export_id} run={self.run_id} chunk={self.chunk_seq} "
                f"rows={self.rows} reason={self.reason}")


Event = Union[RunFinished, ChunkFailed]


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------- sending


def emit(event: Event) -> None:
    """Log `event` on the event logger with its name and dimensions as attributes; in Azure (after
    `configure`) the record is exported to Application Insights as a custom event and flushed at once,
    so an instance scaled in right after the run loses nothing. Never raises for a telemetry failure."""
    if not isinstance(event, (RunFinished, ChunkFailed)):
        raise TypeError(f"emit() takes a RunFinished or ChunkFailed event, got {type(event).__name__}")
    exporting = configure()
    log.log(event.level, event.message(), extra={CUSTOM_EVENT_ATTRIBUTE: event.name, **event.dimensions()})
    if exporting:
        _flush()


def run_finished(**fields_: Any) -> RunFinished:
    """`emit(RunFinished(**fields))`; the event is returned."""
    event = RunFinished(**fields_)
    emit(event)
    return event


def chunk_failed(**fields_: Any) -> ChunkFailed:
    """`emit(ChunkFailed(**fields))`; the event is returned."""
    event = ChunkFailed(**fields_)
    emit(event)
    return event


_lock = threading.Lock()
_exporting: bool | None = None  # None: not decided yet for this process


def configure(settings: Settings | None = None) -> bool:
    """Export the event logger to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set
    (Azure); otherwise events stay log lines. Decided once per process; True when exporting."""
    global _exporting
    if _exporting is not None:
        return _exporting
    with _lock:
        if _exporting is None:
            _exporting = _start_exporter(settings)
    return _exporting


def _start_exporter(settings: Settings | None) -> bool:
    if settings is None:
        from .settings import get_settings

        try:
            settings = get_settings()
        except ValueError as error:  # a bad setting is reported where it is used; events stay log lines
            _internal.warning("run telemetry not exported: %s", error)
            return False
    connection_string = settings.applicationinsights_connection_string
    if not connection_string:
        return False
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor

        # The distro's default resource detectors include azure_vm, which probes the VM metadata
        # endpoint; on Functions the azure_functions detector names the app (as the Python worker does).
        os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_functions")
        # The exporter would also send its own success counters as metrics every 15 minutes: only events.
        os.environ.setdefault("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")
        configure_azure_monitor(
            connection_string=connection_string,
            logger_name=EVENT_LOGGER,
            disable_tracing=True,
            disable_metrics=True,
            enable_live_metrics=False,
            enable_performance_counters=False,
            instrumentation_options={name: {"enabled": False} for name in _INSTRUMENTATIONS},
        )
    except Exception as error:  # noqa: BLE001 - telemetry must never stop a run
        _internal.warning("run telemetry not exported: configuring Azure Monitor failed: %s", error)
        return False
    return True


def _flush(timeout_millis: int = 10_000) -> None:
    try:
        from opentelemetry._logs import get_logger_provider

        provider = get_logger_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush(timeout_millis)
    except Exception as error:  # noqa: BLE001 - telemetry must never stop a run
        _internal.warning("run telemetry: flushing to Application Insights failed: %s", error)


# --------------------------------------------------------------------------- log volume

# Loggers of the Azure SDK that log every request and response (headers included) at INFO:
# about 8 lines per storage call, each billed by Application Insights. WARNING keeps their errors.
NOISY_SDK_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy", "azure.identity", "urllib3")


def quiet_sdk_logging() -> None:
    """Azure SDK (and urllib3) logging at WARNING: their INFO lines are per-request noise."""
    for name in NOISY_SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
