"""Track a budget: every movement in `budget/<budget_id>`, typed `budget.<kind>`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _local_spine import local_spine

from event_spine import RequestContext, StoredEvent
from event_spine.emitters import emit_budget_event


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(tenant_id="t_acme", env="prod", mode="saas", project_id="p_agents")
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        emit_budget_event(
            ctx, "b_2024q3", "allocated", 500.0, balance=500.0, producer=spine.producer
        )
        emit_budget_event(
            ctx, "b_2024q3", "consumed", 12.25, balance=487.75, producer=spine.producer
        )
        emit_budget_event(
            ctx, "b_2024q3", "consumed", 90_000, unit="tokens", producer=spine.producer
        )
        events = await spine.read(ctx, "budget/b_2024q3", 3)
    print([e.record.event_type for e in events])
    return events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
