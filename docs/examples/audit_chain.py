"""Audit events: one `audit` stream per scope, hash-chained by the sink, verifiable."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _local_spine import local_spine

from event_spine import RequestContext, ResourceKind, RouteKey, StoredEvent
from event_spine.audit import emit_audit_event
from event_spine.audit.verify import verify_chain


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(
        tenant_id="t_acme", env="prod", mode="saas", project_id="p_admin", user_id="u_root"
    )
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        emit_audit_event(
            ctx,
            "user.invited",
            surface="admin",
            input_data={"email": "x@y.z"},
            producer=spine.producer,
        )
        # strict=True would return only once stored and chained: see route_check.py.
        emit_audit_event(ctx, "key.rotated", surface="security", producer=spine.producer)
        events = await spine.read(ctx, "audit", 2)
        route = await spine.registry.get_route(
            RouteKey.for_scope(ResourceKind.EVENT_SPINE, ctx.key())
        )
        report = await verify_chain(await spine.stores.event_store(route), ctx.scope)
    print(report.describe())  # or: spine audit verify --registry ... --tenant t_acme ...
    assert report.ok
    assert report.checked == 2
    return events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
