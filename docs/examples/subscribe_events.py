"""Follow a tenant's order streams: stored history first, then live, exactly once."""

from __future__ import annotations

import asyncio
import sys
from contextlib import aclosing
from pathlib import Path

from _local_spine import local_spine

from event_spine import RequestContext, StoredEvent
from event_spine.subscriptions import SubscriptionFilter, subscribe


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(tenant_id="t_acme", env="dev", mode="saas", project_id="p_shop")
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        for n in range(3):  # history: stored before the subscriber starts
            spine.producer.emit_event(ctx, "order.placed", "orders/o_1", {"n": n})
        await spine.read(ctx, "orders/o_1", 3)
        events = subscribe(
            ctx,
            SubscriptionFilter(type_prefixes=("order.",), stream_prefixes=("orders/",)),
            registry=spine.registry,
            stores=spine.stores,
            kafka=bootstrap_servers,
            topic=spine.topic,
            after={"orders/o_1": None},  # catch this stream up from its start
        )
        received: list[StoredEvent] = []
        async with aclosing(events):
            async for event in events:
                received.append(event)
                if len(received) == 3:  # history done: now emit live events
                    spine.producer.emit_event(ctx, "order.paid", "orders/o_1", {"n": 3})
                    spine.producer.emit_event(ctx, "note.added", "orders/o_1", {})  # filtered
                if len(received) == 4:
                    break
    print([(e.position, e.record.event_type) for e in received])
    return received


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
