"""Product analytics: a snake_case name and flat scalar properties."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _local_spine import local_spine

from event_spine import EventValidationError, RequestContext, StoredEvent
from event_spine.emitters import emit_analytics_event


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(
        tenant_id="t_shop", env="prod", mode="saas", project_id="p_web", surface_id="cart"
    )
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        emit_analytics_event(
            ctx, "cart_viewed", {"items": 3, "total_cents": 4599}, producer=spine.producer
        )
        try:  # validation happens in the call and names the field
            emit_analytics_event(ctx, "cart_viewed", {"items": [1, 2]}, producer=spine.producer)  # type: ignore[dict-item]
        except EventValidationError as exc:
            print("refused:", exc.field)
        events = await spine.read(ctx, "analytics/cart_viewed", 1)
    print(events[0].record.payload["properties"])
    return events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
