"""Hard-fail at emit, and strict audit: the caller learns at once, not the DLQ later."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _local_spine import local_spine

from event_spine import (
    EventSpineProducer,
    ProducerSettings,
    RequestContext,
    RouteNotFound,
    StoredEvent,
)
from event_spine.audit import emit_audit_event
from event_spine.routing import RouteChecker, RouteCheckSettings


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(tenant_id="t_acme", env="prod", mode="saas", project_id="p_api")
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        checker = RouteChecker(
            RouteCheckSettings(
                registry_backend="sqlite",
                registry_config={"path": str(workdir / "registry.db")},
                lab_and_dev="skip",  # "enforce": also refuse unrouted lab / dev scopes
            ),
            # Explicit opt-out to keep this example's audit stream to one event; in
            # production: audit=registry_audit_hook(<a producer without this checker>).
            audit=None,
        )
        producer = EventSpineProducer(
            ProducerSettings(bootstrap_servers=bootstrap_servers, topic=spine.topic),
            route_checker=checker,
        )
        try:
            producer.emit_event(ctx, "order.placed", "orders/o_1", {"total_cents": 1250})
            nobody = ctx.model_copy(update={"tenant_id": "t_nobody"})
            try:
                producer.emit_event(nobody, "order.placed", "orders/o_1", {"total_cents": 1})
            except RouteNotFound as exc:
                print(f"refused at emit: {exc}")
            # Strict: returns once stored and chained (off the loop: the sink runs here).
            await asyncio.to_thread(
                emit_audit_event, ctx, "key.rotated", producer=producer, strict=True
            )
            events = await spine.read(ctx, "orders/o_1", 1)
            events += await spine.read(ctx, "audit", 1)
        finally:
            producer.close()
            checker.close()
    return events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
