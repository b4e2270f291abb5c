"""A deploy timeline, stored where the scope's `event_spine` route says."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _local_spine import local_spine

from event_spine import RequestContext, StoredEvent
from event_spine.timeline import TimelineEntry, Timelines


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(tenant_id="t_acme", env="prod", mode="saas", project_id="p_api")
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        # write_both: entries are readable here at once, and durable through the spine.
        timelines = Timelines(spine.registry, spine.stores, spine.producer, write_both=True)
        timeline = await timelines.for_context(ctx)
        entry = TimelineEntry(kind="deploy.done", title="api v2.3.1 live", actor="ci")
        await timeline.append(ctx, "deploys", entry)
        print([e.title for e in await timeline.list_after(ctx, "deploys")])
        events = await spine.read(ctx, "timeline/deploys", 1)  # the durable copy
    assert events[0].event_id == entry.entry_id
    return events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
