"""Record a safety decision, then read it back from the tenant's store."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _local_spine import local_spine

from event_spine import RequestContext, StoredEvent
from event_spine.emitters import emit_safety_decision


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(
        tenant_id="t_acme",
        env="dev",
        mode="saas",
        project_id="p_chat",
        user_id="u_42",
        surface_id="chat",
        request_id="req-1",
    )
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        event_id = emit_safety_decision(
            ctx,
            "redact",
            "The answer quoted a customer's phone number.",
            policy_id="pii-v3",
            rule_ids=["phone-number"],
            score=0.93,
            producer=spine.producer,  # or omit it: the default producer is used
        )
        events = await spine.read(ctx, "safety/decisions", 1)
    assert events[0].event_id == event_id
    print(events[0].record.event_type, events[0].record.payload)
    return events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
