"""Test what a request emits, and that it is readable with list_after: no broker."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from event_spine import RequestContext, StoredEvent, emit_event
from event_spine.audit import emit_audit_event
from event_spine.emitters import emit_budget_event
from event_spine.testing import LocalSink, MemoryProducer, installed


def place_order(ctx: RequestContext, order_id: str, amount_cents: int) -> str:
    """Application code: emits through the default producer, as in production."""
    event_id = emit_event(ctx, "order.placed", f"orders/{order_id}", {"amount": amount_cents})
    emit_budget_event(ctx, "b_q3", "consumed", amount_cents / 100)
    emit_audit_event(ctx, "order.placed", surface="shop", input_data={"order": order_id})
    return event_id


async def main(workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(
        tenant_id="t_acme", env="prod", mode="saas", project_id="p_shop", request_id="req-1"
    )
    with installed(MemoryProducer()) as producer:  # the default producer for the block
        event_id = place_order(ctx, "o_123", 1299)

    # 1. What the request emitted, validated exactly as the real producer would.
    assert [e.event_type for e in producer.events] == [
        "order.placed",
        "budget.consumed",
        "audit.order.placed",
    ]
    assert producer.events[0].metadata["request_id"] == "req-1"

    # 2. Through the sink's real batch processor into SQLite, then read back.
    async with LocalSink(producer, path=workdir / "events.db") as sink:
        outcome = await sink.drain()  # raises DeadLettered if the sink would refuse one
        assert outcome.written == 3
        events = await sink.list_after(ctx, "orders/o_123")
        assert [e.event_id for e in events] == [event_id]
        events += await sink.list_after(ctx, "audit")
    print(events[0].record.event_type, events[0].record.payload)
    return events


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
