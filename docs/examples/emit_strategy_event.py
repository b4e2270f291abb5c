"""A strategy's life: proposed, adopted, revised, retired, in `strategy/<strategy_id>`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _local_spine import local_spine

from event_spine import RequestContext, StoredEvent
from event_spine.emitters import emit_strategy_event, parse_payload


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(
        tenant_id="t_acme",
        env="prod",
        mode="enterprise",
        project_id="p_pricing",
        user_id="u_pm",
    )
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        emit_strategy_event(
            ctx,
            "s_discounts",
            "proposed",
            "Churn is up 4% in tier B.",
            {"discount": 0.1},
            producer=spine.producer,
        )
        emit_strategy_event(
            ctx, "s_discounts", "adopted", "The A/B test won (p=0.01).", producer=spine.producer
        )
        events = await spine.read(ctx, "strategy/s_discounts", 2)
    for event in events:  # typed again on the way out
        print(event.record.event_type, parse_payload(event.record))
    return events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
