"""Query a tenant's stored events: by stream prefix and type, in pages, with counts."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _local_spine import local_spine

from event_spine import EventQuery, EventStreamService, RequestContext, StoredEvent


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(tenant_id="t_acme", env="dev", mode="saas", project_id="p_shop")
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        for order in ("o_1", "o_2"):
            spine.producer.emit_event(ctx, "order.placed", f"orders/{order}", {"total": 10})
            spine.producer.emit_event(ctx, "order.paid", f"orders/{order}", {"total": 10})
        for order in ("o_1", "o_2"):
            await spine.read(ctx, f"orders/{order}", 2)  # wait until the sink stored them

        service = EventStreamService(ctx, spine.registry, spine.stores)
        # Every "order.paid" of the last hour across orders/*, one event per page: in
        # (stream id, position) order, following the opaque cursor until it is None.
        paid: list[StoredEvent] = []
        query = EventQuery(
            stream_prefix="orders/",
            event_types=("order.paid",),
            since=datetime.now(UTC) - timedelta(hours=1),
            limit=1,
        )
        while True:
            page = await service.query(query)
            paid.extend(page.events)
            if page.next_cursor is None:
                break
            query = replace(query, after=page.next_cursor)

        streams = await service.list_streams(prefix="orders/")
        counts = await service.count_event_types("orders/o_1")
    print([(e.stream_id, e.record.event_type) for e in paid])
    print([s.stream_id for s in streams.streams], counts)
    return paid


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
