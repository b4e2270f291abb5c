"""Build events for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from event_spine.schemas import EventRecord, Scope, StoredEvent, WireRouting, new_event_id

SCOPE = Scope(tenant_id="t_acme", env="dev", mode="lab", project_id="p_core")
OTHER_TENANT = Scope(tenant_id="t_other", env="dev", mode="lab", project_id="p_core")

#: One valid wire document, as JSON would hold it (the decoders' tests mutate copies).
WIRE_DOC: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "01a2139c-3f25-78db-8d5e-d839e4ff5d5c",
    "ts": "2026-11-25T16:45:10.123456Z",
    "event_type": "order.created",
    "stream_id": "orders/o_1",
    "routing": {"tenant_id": "t_acme", "env": "dev", "mode": "lab", "project_id": "p_x"},
    "metadata": {"request_id": "r", "trace_id": None, "extra": [1]},
    "payload": {"a": 1},
}


def record(
    stream_id: str = "s1",
    scope: Scope = SCOPE,
    payload: dict[str, Any] | None = None,
    event_type: str = "test.happened",
    metadata: dict[str, Any] | None = None,
    ts: datetime | None = None,
) -> EventRecord:
    """One valid record."""
    return EventRecord(
        schema_version=1,
        event_id=new_event_id(),
        ts=ts or datetime.now(UTC),
        event_type=event_type,
        stream_id=stream_id,
        routing=WireRouting(scope.tenant_id, scope.env, scope.mode, scope.project_id),
        metadata=metadata or {"request_id": "r1", "trace_id": None},
        payload=payload if payload is not None else {"n": 1},
    )


def stored(position: int, stream_id: str = "s1", scope: Scope = SCOPE, **kw: Any) -> StoredEvent:
    """A record at a position."""
    return StoredEvent(record(stream_id, scope, **kw), position)


def stream_of(
    count: int, stream_id: str = "s1", scope: Scope = SCOPE, start: int = 0, step: int = 1
) -> list[StoredEvent]:
    """``count`` events of one stream at positions start, start+step, ..."""
    return [stored(start + i * step, stream_id, scope, payload={"i": i}) for i in range(count)]
