"""What Omnisend answers about batches, as typed records."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._errors import problem_text

BATCH_STATUSES = ("pending", "inProgress", "finished", "stopped")


@dataclass(frozen=True)
class Batch:
    batch_id: str
    status: str  # "pending" | "inProgress" | "finished" | "stopped"
    total_count: int
    finished_count: int
    errors_count: int
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped")

    @classmethod
    def from_api(cls, body: dict) -> "Batch":
        return cls(
            batch_id=body["batchID"], status=body.get("status", "pending"),
            total_count=body.get("totalCount", 0), finished_count=body.get("finishedCount", 0),
            errors_count=body.get("errorsCount", 0), created_at=body.get("createdAt"),
            started_at=body.get("startedAt"), ended_at=body.get("endedAt"),
        )


@dataclass(frozen=True)
class BatchItemResult:
    item_id: str
    email: str | None  # the item's email identifier, from the request it echoes
    response_code: int
    ok: bool
    message: str  # Omnisend's error text for a failed item; "" when ok

    @classmethod
    def from_api(cls, item: dict) -> "BatchItemResult":
        code = int(item.get("responseCode") or 0)
        ok = 200 <= code < 300
        return cls(item_id=item.get("itemID", ""), email=_item_email(item.get("request")), response_code=code,
                   ok=ok, message="" if ok else problem_text(item.get("response"), code))


def _item_email(request: Any) -> str | None:
    if not isinstance(request, dict):
        return None
    for identifier in request.get("identifiers") or []:
        if isinstance(identifier, dict) and identifier.get("type") == "email":
            return identifier.get("id")
    return None
